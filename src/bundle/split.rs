//! `--split SIZE`: a bundle as numbered parts (`FILE.part001`, ...) and a
//! checksum file (`FILE.sha256`, in `sha256sum` format, so `sha256sum -c`
//! checks it too).
//!
//! The checksum file is written last: parts without one are an export that
//! did not finish. It names the parts by file name only, so the set can be
//! moved together to any directory, and it is what a reader trusts for
//! which parts exist: a part missing from the command line or the disk is
//! named before anything is read.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::BundleError;

/// Part numbers run from 1 to this: a bound on files opened and listed.
pub(crate) const MAX_PARTS: u32 = 99_999;
/// A checksum line is ~80 bytes plus the file name: room for every part.
const MAX_CHECKSUM_FILE: u64 = 16 * 1024 * 1024;
const PART_MARK: &str = ".part";
const CHECKSUM_SUFFIX: &str = ".sha256";

/// Parses `--split`'s SIZE as the config parses sizes (`4GiB`, `700MB`,
/// bytes); at least one byte.
pub(crate) fn parse_part_size(text: &str) -> Result<u64, String> {
    match crate::config::parse_size(text) {
        Some(0) => Err("a part must hold at least one byte".to_string()),
        Some(size) => Ok(size),
        None => Err(format!(
            "invalid size {text:?}: use e.g. 4GiB, 700MB or bytes"
        )),
    }
}

/// `FILE.part001`: three digits at least, more past 999.
fn part_path(output: &Path, number: u32) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(format!("{PART_MARK}{number:03}"));
    PathBuf::from(name)
}

fn checksum_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(CHECKSUM_SUFFIX);
    PathBuf::from(name)
}

fn named(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes a bundle as parts of at most `part_size` bytes each. Dropped
/// without [`SplitWriter::finish`], it leaves parts and no checksum file,
/// which a reader refuses.
pub(crate) struct SplitWriter {
    output: PathBuf,
    part_size: u64,
    /// The part being written, its bytes so far and their hash.
    current: Option<(BufWriter<File>, u64, Sha256)>,
    /// Finished parts: path and SHA-256.
    done: Vec<(PathBuf, [u8; 32])>,
}

impl SplitWriter {
    pub(crate) fn create(output: &Path, part_size: u64) -> Result<SplitWriter, BundleError> {
        if part_size == 0 {
            return Err(BundleError::Invalid(
                "a part must hold at least one byte".to_string(),
            ));
        }
        if output.file_name().is_none() {
            return Err(BundleError::Invalid(format!(
                "{}: not a file name",
                output.display()
            )));
        }
        // A checksum file of an earlier export would vouch for parts this
        // one is overwriting: remove it first.
        let checksums = checksum_path(output);
        match std::fs::remove_file(&checksums) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BundleError::File {
                    path: checksums.display().to_string(),
                    source,
                })
            }
        }
        Ok(SplitWriter {
            output: output.to_path_buf(),
            part_size,
            current: None,
            done: Vec::new(),
        })
    }

    /// Ends the last part and writes the checksum file; returns the files
    /// written (the parts in order, then the checksum file).
    pub(crate) fn finish(mut self) -> Result<Vec<PathBuf>, BundleError> {
        if self.current.is_none() && self.done.is_empty() {
            // An empty bundle is still one (empty) part.
            self.open_next()?;
        }
        self.close_current()?;
        // Parts an earlier, longer export left behind would otherwise be
        // picked up by `FILE.part*`.
        let mut stale = self.done.len() as u32 + 1;
        while stale <= MAX_PARTS {
            let path = part_path(&self.output, stale);
            if std::fs::remove_file(&path).is_err() {
                break;
            }
            stale += 1;
        }
        let mut list = String::new();
        for (path, hash) in &self.done {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            list.push_str(&format!("{}  {name}\n", hex::encode(hash)));
        }
        let checksums = checksum_path(&self.output);
        let file_error = |source| BundleError::File {
            path: checksums.display().to_string(),
            source,
        };
        // Written beside and renamed: a checksum file is whole or absent.
        let temp = {
            let mut name = checksums.as_os_str().to_owned();
            name.push(".tmp");
            PathBuf::from(name)
        };
        let mut file = File::create(&temp).map_err(file_error)?;
        file.write_all(list.as_bytes()).map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        std::fs::rename(&temp, &checksums).map_err(file_error)?;
        let mut files: Vec<PathBuf> = self.done.drain(..).map(|(path, _)| path).collect();
        files.push(checksums);
        Ok(files)
    }

    fn open_next(&mut self) -> std::io::Result<()> {
        let number = self.done.len() as u32 + 1;
        if number > MAX_PARTS {
            return Err(std::io::Error::other(format!(
                "the bundle would need more than {MAX_PARTS} parts of {} bytes: split it into larger parts",
                self.part_size
            )));
        }
        let path = part_path(&self.output, number);
        let file = File::create(&path).map_err(named(&path))?;
        self.current = Some((BufWriter::with_capacity(256 * 1024, file), 0, Sha256::new()));
        Ok(())
    }

    fn close_current(&mut self) -> std::io::Result<()> {
        if let Some((writer, _, hash)) = self.current.take() {
            let path = part_path(&self.output, self.done.len() as u32 + 1);
            let file = writer
                .into_inner()
                .map_err(|e| named(&path)(e.into_error()))?;
            // Parts go to removable media: on disk before the next starts.
            file.sync_all().map_err(named(&path))?;
            self.done.push((path, hash.finalize().into()));
        }
        Ok(())
    }
}

impl Write for SplitWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if matches!(&self.current, Some((_, written, _)) if *written >= self.part_size) {
            self.close_current()?;
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let part_size = self.part_size;
        let number = self.done.len() as u32 + 1;
        let Some((writer, written, hash)) = self.current.as_mut() else {
            return Err(std::io::Error::other("no part open"));
        };
        let room = usize::try_from(part_size - *written).unwrap_or(usize::MAX);
        let take = buf.len().min(room);
        let n = writer
            .write(&buf[..take])
            .map_err(named(&part_path(&self.output, number)))?;
        hash.update(&buf[..n]);
        *written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.current.as_mut() {
            Some((writer, _, _)) => writer.flush(),
            None => Ok(()),
        }
    }
}

/// One part as the checksum file lists it.
struct Part {
    path: PathBuf,
    sha256: [u8; 32],
}

/// Reads the parts of a split bundle, given in any order (with or without
/// the checksum file among them), as one stream: every part listed in the
/// checksum file must be there (else `MissingPart` before any byte is
/// read), and each is hashed as it is read (`DamagedPart` at its end).
///
/// A reader of the bundle's format (tar) may stop at the end-of-archive
/// mark before the stream's end: call [`PartsReader::finish`] (or read to
/// the end) so the last part's checksum is checked too.
pub(crate) struct PartsReader {
    parts: std::vec::IntoIter<Part>,
    current: Option<(BufReader<File>, Part, Sha256)>,
}

impl PartsReader {
    /// Reads what is left and checks every part's checksum.
    pub(crate) fn finish(mut self) -> Result<(), BundleError> {
        std::io::copy(&mut self, &mut std::io::sink())
            .map(|_| ())
            .map_err(BundleError::from)
    }

    /// Opens the next part; `false` at the end.
    fn next_part(&mut self) -> std::io::Result<bool> {
        let Some(part) = self.parts.next() else {
            return Ok(false);
        };
        let file = File::open(&part.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                // Removed since open_parts looked.
                std::io::Error::other(BundleError::MissingPart {
                    part: part.path.display().to_string(),
                })
            } else {
                named(&part.path)(e)
            }
        })?;
        self.current = Some((
            BufReader::with_capacity(256 * 1024, file),
            part,
            Sha256::new(),
        ));
        Ok(true)
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.current.is_none() && !self.next_part()? {
                return Ok(0);
            }
            let Some((reader, part, hash)) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = reader.read(buf).map_err(named(&part.path))?;
            if n > 0 {
                hash.update(&buf[..n]);
                return Ok(n);
            }
            // The part's end: it must be what the checksum file says.
            let sha256: [u8; 32] = std::mem::take(hash).finalize().into();
            if sha256 != part.sha256 {
                return Err(std::io::Error::other(BundleError::DamagedPart {
                    part: part.path.display().to_string(),
                }));
            }
            self.current = None;
        }
    }
}

/// How a file given to import reads by its name.
enum Given {
    /// `FILE.partNNN`: the bundle `FILE`, part NNN.
    Part(PathBuf, u32),
    /// `FILE.sha256`.
    Checksums(PathBuf),
    Whole,
}

fn classify(path: &Path) -> Given {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Given::Whole;
    };
    if let Some(stem) = name.strip_suffix(CHECKSUM_SUFFIX) {
        if !stem.is_empty() {
            return Given::Checksums(path.with_file_name(stem));
        }
    }
    if let Some((stem, digits)) = name.rsplit_once(PART_MARK) {
        if !stem.is_empty() && digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(number) = digits.parse::<u32>() {
                return Given::Part(path.with_file_name(stem), number);
            }
        }
    }
    Given::Whole
}

/// `None` when `files` is one whole bundle (not parts).
///
/// Parts are recognised by name (`FILE.partNNN`, `FILE.sha256`). Given the
/// checksum file alone, every part it lists is read from beside it; given
/// parts, exactly those are read, and each listed part must be among them.
pub(crate) fn open_parts(files: &[PathBuf]) -> Result<Option<PartsReader>, BundleError> {
    let invalid = |text: String| Err(BundleError::Invalid(text));
    let mut checksums: Option<PathBuf> = None;
    let mut given_parts: Vec<(PathBuf, u32)> = Vec::new();
    let mut wholes = Vec::new();
    // The bundle's name (`FILE`) and the file that first showed it.
    let mut bundle: Option<(std::ffi::OsString, &PathBuf)> = None;
    for file in files {
        let stem = match classify(file) {
            Given::Whole => {
                wholes.push(file);
                continue;
            }
            Given::Checksums(stem) => {
                checksums = Some(file.clone());
                stem
            }
            Given::Part(stem, number) => {
                given_parts.push((file.clone(), number));
                stem
            }
        };
        let name = stem.file_name().unwrap_or_default().to_owned();
        match &bundle {
            Some((first, shown)) if *first != name => {
                return invalid(format!(
                    "{} and {} are parts of different bundles: give the parts of one",
                    shown.display(),
                    file.display()
                ));
            }
            Some(_) => {}
            None => bundle = Some((name, file)),
        }
    }
    let Some((bundle_name, first)) = bundle else {
        return match wholes.as_slice() {
            [] => invalid("no bundle file given".to_string()),
            [_] => Ok(None),
            _ => invalid(format!(
                "{} files given: give one bundle, or the parts of one split bundle (FILE.part001, ..., FILE.sha256)",
                wholes.len()
            )),
        };
    };
    if let Some(other) = wholes.first() {
        return invalid(format!(
            "{} is not a part of the split bundle {}: give one bundle, or the parts of one",
            other.display(),
            first.with_file_name(&bundle_name).display()
        ));
    }
    // Not given: beside the first part given.
    let checksums = checksums.unwrap_or_else(|| checksum_path(&first.with_file_name(&bundle_name)));
    let listed = read_checksums(&checksums)?;

    let bundle_name = bundle_name.to_string_lossy();
    let mut by_number = std::collections::HashMap::new();
    for (path, number) in &given_parts {
        if let Some(other) = by_number.insert(*number, path) {
            if other != path {
                return invalid(format!(
                    "{} and {} are both part {number}",
                    other.display(),
                    path.display()
                ));
            }
        }
    }
    let mut parts = Vec::with_capacity(listed.len());
    for (index, (number, sha256)) in listed.into_iter().enumerate() {
        let expected = index as u32 + 1;
        let name = format!("{bundle_name}{PART_MARK}{expected:03}");
        if number != expected {
            // The list skips a part: someone edited it, or lost a line.
            return Err(BundleError::MissingPart { part: name });
        }
        let path = if given_parts.is_empty() {
            checksums.with_file_name(&name)
        } else {
            match by_number.get(&number) {
                Some(path) => (*path).clone(),
                None => {
                    return Err(BundleError::MissingPart {
                        part: checksums.with_file_name(&name).display().to_string(),
                    })
                }
            }
        };
        if !path.is_file() {
            return Err(BundleError::MissingPart {
                part: path.display().to_string(),
            });
        }
        parts.push(Part { path, sha256 });
    }
    if let Some((path, _)) = given_parts
        .iter()
        .find(|(_, number)| *number == 0 || *number as usize > parts.len())
    {
        return invalid(format!(
            "{} is not listed in {}: not a part of this bundle",
            path.display(),
            checksums.display()
        ));
    }
    Ok(Some(PartsReader {
        parts: parts.into_iter(),
        current: None,
    }))
}

/// Checks every part of a split bundle against its checksum, reading each
/// whole: `Ok(())` also for one whole bundle. A damaged part usually shows
/// first as what the damage broke (a blob's digest, a tar header), since
/// its checksum is known only at its end: after a failed import of parts,
/// this names the damaged part so that the user knows which to copy again.
pub(crate) fn check_parts(files: &[PathBuf]) -> Result<(), BundleError> {
    match open_parts(files)? {
        Some(parts) => parts.finish(),
        None => Ok(()),
    }
}

/// The checksum file's lines, `<sha256 hex>  FILE.partNNN` (or ` *` for
/// binary mode, as `sha256sum -b` writes), sorted by part number.
fn read_checksums(path: &Path) -> Result<Vec<(u32, [u8; 32])>, BundleError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BundleError::MissingPart {
                part: shown.clone(),
            }
        } else {
            BundleError::File {
                path: shown.clone(),
                source,
            }
        }
    })?;
    let bundle_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(CHECKSUM_SUFFIX))
        .unwrap_or_default()
        .to_string();
    let bad = |line: usize, why: &str| BundleError::Invalid(format!("{shown} line {line}: {why}"));
    let mut parts: Vec<(u32, [u8; 32])> = Vec::new();
    for (index, line) in BufReader::new(file.take(MAX_CHECKSUM_FILE))
        .lines()
        .enumerate()
    {
        let line = line.map_err(|source| BundleError::File {
            path: shown.clone(),
            source,
        })?;
        let number = index + 1;
        // A copy through a tool that wrote CRLF line ends still reads.
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (hash, name) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| bad(number, "not `<sha256>  <file>`"))?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| bad(number, "not a SHA-256 in hex"))?;
        // Only parts of this bundle, by plain file name: never a path that
        // leads elsewhere (`../x`, `/etc/x`).
        let part = match classify(Path::new(name)) {
            Given::Part(stem, part)
                if !name.contains('/') && stem.as_os_str() == bundle_name.as_str() =>
            {
                part
            }
            _ => {
                return Err(bad(
                    number,
                    &format!("{name:?} is not a part of {bundle_name}"),
                ))
            }
        };
        if part == 0 || part > MAX_PARTS {
            return Err(bad(number, &format!("part number {part} is out of range")));
        }
        if parts.len() as u32 >= MAX_PARTS {
            return Err(bad(number, &format!("more than {MAX_PARTS} parts")));
        }
        parts.push((part, sha256));
    }
    if parts.is_empty() {
        return Err(BundleError::Invalid(format!("{shown} lists no parts")));
    }
    parts.sort_by_key(|(number, _)| *number);
    if let Some(pair) = parts.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(BundleError::Invalid(format!(
            "{shown}: part {} is listed twice",
            pair[0].0
        )));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from part to part, so a swapped part shows.
    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Splits `data` into parts of `size` under `dir`; the files written.
    fn split(dir: &Path, data: &[u8], size: u64) -> Vec<PathBuf> {
        let mut writer = SplitWriter::create(&dir.join("b.tar"), size).unwrap();
        // Odd chunk sizes, so writes straddle part boundaries.
        for chunk in data.chunks(7) {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(files: &[PathBuf]) -> Result<Vec<u8>, BundleError> {
        let mut reader = open_parts(files)?.expect("parts, not a whole bundle");
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn parts_hold_at_most_size_and_reassemble_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(1000);
        let files = split(dir.path(), &data, 300);
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "b.tar.part001",
                "b.tar.part002",
                "b.tar.part003",
                "b.tar.part004",
                "b.tar.sha256"
            ]
        );
        let sizes: Vec<u64> = files[..4]
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        assert_eq!(sizes, [300, 300, 300, 100]);

        let mut shuffled = vec![
            files[2].clone(),
            files[4].clone(),
            files[0].clone(),
            files[3].clone(),
            files[1].clone(),
        ];
        assert_eq!(read_all(&shuffled).unwrap(), data);
        // Without the checksum file: found beside the parts.
        shuffled.retain(|f| !f.to_string_lossy().ends_with(".sha256"));
        assert_eq!(read_all(&shuffled).unwrap(), data);
        // The checksum file alone: every part it lists, from beside it.
        assert_eq!(read_all(&files[4..]).unwrap(), data);
    }

    #[test]
    fn a_checksum_file_with_crlf_line_ends_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(100);
        let files = split(dir.path(), &data, 60);
        let text = std::fs::read_to_string(&files[2]).unwrap();
        std::fs::write(&files[2], text.replace('\n', "\r\n")).unwrap();
        assert_eq!(read_all(&files).unwrap(), data);
    }

    #[test]
    fn the_checksum_file_is_sha256sum_format() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(50);
        let files = split(dir.path(), &data, 20);
        let text = std::fs::read_to_string(&files[3]).unwrap();
        let first = hex::encode(Sha256::digest(&data[..20]));
        assert_eq!(
            text.lines().next().unwrap(),
            format!("{first}  b.tar.part001")
        );
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn sha256sum_checks_the_parts() {
        let dir = tempfile::tempdir().unwrap();
        split(dir.path(), &sample(1000), 300);
        let check = std::process::Command::new("sha256sum")
            .args(["-c", "b.tar.sha256"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        assert_eq!(
            String::from_utf8_lossy(&check.stdout)
                .matches(": OK")
                .count(),
            4
        );
    }

    #[test]
    fn an_exact_multiple_makes_no_empty_part_and_empty_input_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(600), 300);
        assert_eq!(files.len(), 3);
        let empty = tempfile::tempdir().unwrap();
        let files = split(empty.path(), &[], 300);
        assert_eq!(files.len(), 2);
        assert_eq!(read_all(&files).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_missing_part_is_named_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(1000), 300);
        // Not given on the command line.
        let given = [files[0].clone(), files[2].clone(), files[3].clone()];
        match open_parts(&given) {
            Err(BundleError::MissingPart { part }) => assert!(part.ends_with("b.tar.part002")),
            other => panic!("{:?}", other.err()),
        }
        // Gone from the disk, the checksum file given alone.
        std::fs::remove_file(&files[3]).unwrap();
        match open_parts(&files[4..]) {
            Err(BundleError::MissingPart { part }) => assert!(part.ends_with("b.tar.part004")),
            other => panic!("{:?}", other.err()),
        }
        // No checksum file: named too.
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(100), 60);
        std::fs::remove_file(&files[2]).unwrap();
        let err = open_parts(&files[..2]).err().unwrap();
        assert!(err.to_string().contains("b.tar.sha256"), "{err}");
    }

    #[test]
    fn a_damaged_part_is_named_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(1000);
        let files = split(dir.path(), &data, 300);
        let mut bytes = std::fs::read(&files[1]).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&files[1], &bytes).unwrap();
        let mut reader = open_parts(&files).unwrap().unwrap();
        let mut first = vec![0; 300];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(first, data[..300]);
        let mut rest = Vec::new();
        let err = BundleError::from(reader.read_to_end(&mut rest).unwrap_err());
        match err {
            BundleError::DamagedPart { part } => assert!(part.ends_with("b.tar.part002")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn finish_checks_the_last_part_a_format_reader_left_unread() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(1000), 300);
        let mut bytes = std::fs::read(&files[3]).unwrap();
        bytes[99] ^= 1;
        std::fs::write(&files[3], &bytes).unwrap();
        let mut reader = open_parts(&files).unwrap().unwrap();
        let mut head = vec![0; 950];
        reader.read_exact(&mut head).unwrap();
        match reader.finish() {
            Err(BundleError::DamagedPart { part }) => assert!(part.ends_with("b.tar.part004")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_error_survives_a_reader_that_wraps_it() {
        let inner = std::io::Error::other(BundleError::DamagedPart {
            part: "x.part002".into(),
        });
        // As tar wraps the errors of the reader under it.
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "reading the archive: {}", self.0)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let outer = std::io::Error::new(std::io::ErrorKind::InvalidData, Wrapper(inner));
        assert!(matches!(
            BundleError::from(outer),
            BundleError::DamagedPart { part } if part == "x.part002"
        ));
        let plain = std::io::Error::other("disk on fire");
        assert!(matches!(BundleError::from(plain), BundleError::Io(_)));
    }

    #[test]
    fn check_parts_names_the_damaged_part() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(1000), 300);
        check_parts(&files).unwrap();
        let mut bytes = std::fs::read(&files[2]).unwrap();
        bytes[0] ^= 0x80;
        std::fs::write(&files[2], &bytes).unwrap();
        match check_parts(&files) {
            Err(BundleError::DamagedPart { part }) => assert!(part.ends_with("b.tar.part003")),
            other => panic!("{other:?}"),
        }
        let whole = dir.path().join("whole.tar");
        std::fs::write(&whole, b"x").unwrap();
        check_parts(&[whole]).unwrap();
    }

    #[test]
    fn one_whole_bundle_is_not_parts() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("bundle.tar");
        std::fs::write(&whole, b"tar").unwrap();
        assert!(open_parts(std::slice::from_ref(&whole)).unwrap().is_none());
        let err = open_parts(&[whole.clone(), whole.clone()]).err().unwrap();
        assert!(matches!(err, BundleError::Invalid(_)), "{err}");
        assert!(open_parts(&[]).is_err());
    }

    #[test]
    fn refuses_mixed_bundles_and_unlisted_parts() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(100), 60);
        let other = dir.path().join("c.tar.part003");
        std::fs::write(&other, b"x").unwrap();
        let err = open_parts(&[files[0].clone(), other]).err().unwrap();
        assert!(err.to_string().contains("different bundles"), "{err}");

        let stray = dir.path().join("b.tar.part003");
        std::fs::write(&stray, b"x").unwrap();
        let err = open_parts(&[files[0].clone(), files[1].clone(), stray])
            .err()
            .unwrap();
        assert!(err.to_string().contains("not listed"), "{err}");

        let whole = dir.path().join("b.tar");
        std::fs::write(&whole, b"x").unwrap();
        let err = open_parts(&[files[0].clone(), whole]).err().unwrap();
        assert!(err.to_string().contains("not a part"), "{err}");
    }

    #[test]
    fn a_checksum_file_naming_other_paths_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = split(dir.path(), &sample(100), 60);
        let hash = "0".repeat(64);
        for line in [
            format!("{hash}  ../b.tar.part001"),
            format!("{hash}  /etc/b.tar.part001"),
            format!("{hash}  other.part001"),
            format!("{hash}  b.tar.part000"),
            "nonsense".to_string(),
            format!("{hash}  b.tar.part001\n{hash}  b.tar.part001"),
        ] {
            std::fs::write(&files[2], format!("{line}\n")).unwrap();
            let err = open_parts(&files).err().unwrap();
            assert!(matches!(err, BundleError::Invalid(_)), "{line}: {err}");
        }
        // A line lost: the gap is the missing part.
        std::fs::write(&files[2], format!("{hash}  b.tar.part002\n")).unwrap();
        match open_parts(&files[2..]) {
            Err(BundleError::MissingPart { part }) => assert_eq!(part, "b.tar.part001"),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn a_new_split_replaces_an_older_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        split(dir.path(), &sample(1000), 300);
        let data = sample(500);
        let files = split(dir.path(), &data, 300);
        assert_eq!(files.len(), 3);
        assert!(!dir.path().join("b.tar.part003").exists());
        assert!(!dir.path().join("b.tar.part004").exists());
        assert_eq!(read_all(&files).unwrap(), data);
    }

    #[test]
    fn part_sizes_parse_as_the_config_does() {
        assert_eq!(parse_part_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_part_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_part_size("4096"), Ok(4096));
        assert!(parse_part_size("0").is_err());
        assert!(parse_part_size("big").is_err());
    }
}
