//! The OpenAPI document at `/pulp/api/v3/docs/api.json`, in Pulp's terms so
//! that Pulp's own clients (pulp-glue, hence pulp-cli) find their way:
//! Pulp's operation ids, Pulp's `{<entity>_href}` path templates (a client
//! substitutes the whole href), and `info.x-pulp-app-versions`, from which
//! pulp-glue decides which Pulp components (and versions) a server offers.
//!
//! It lists only the operations ferry serves: a client asking for any other
//! (a sync, a push repository, users...) finds no such operation and says so
//! before sending a request. The dispatch in `mod.rs` serves them; the
//! functions below only carry each operation's description (one handler
//! such as `repositories::handle` serves several operations).

// The functions of `operations` are never called: each only holds the
// description of one operation for utoipa.
#![allow(dead_code)]

use serde_json::json;
use utoipa::OpenApi;

use super::{
    bundles, bundles_import, content, distributions, remotes, repositories, status, tasks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry management API", description = "Pulp-compatible pull-through caching API of ferry: \
        the operations of pulpcore and pulp_container (versions in x-pulp-app-versions) that ferry serves, \
        under Pulp's operation ids. Paths named {..._href} take the object's pulp_href."),
    paths(
        operations::remotes_container_pull_through_list,
        operations::remotes_container_pull_through_create,
        operations::remotes_container_pull_through_read,
        operations::remotes_container_pull_through_update,
        operations::remotes_container_pull_through_partial_update,
        operations::remotes_container_pull_through_delete,
        operations::distributions_container_pull_through_list,
        operations::distributions_container_pull_through_create,
        operations::distributions_container_pull_through_read,
        operations::distributions_container_pull_through_update,
        operations::distributions_container_pull_through_partial_update,
        operations::distributions_container_pull_through_delete,
        operations::distributions_container_pull_through_prefetch,
        operations::distributions_container_container_list,
        operations::distributions_container_container_read,
        operations::repositories_container_container_list,
        operations::repositories_container_container_read,
        operations::repositories_container_container_delete,
        operations::repositories_container_container_remove,
        operations::repositories_container_container_versions_list,
        operations::repositories_container_container_versions_read,
        operations::content_container_tags_list,
        operations::content_container_tags_read,
        operations::content_container_tags_refresh,
        operations::content_container_tags_pin,
        operations::content_container_tags_unpin,
        operations::repositories_container_container_pin,
        operations::repositories_container_container_unpin,
        operations::distributions_pull_through_pin,
        operations::distributions_pull_through_unpin,
        operations::content_container_manifests_list,
        operations::content_container_manifests_read,
        operations::content_container_blobs_list,
        operations::content_container_blobs_read,
        operations::tasks_read,
        operations::status_read,
        operations::status_history_read,
        operations::bundles_import,
        operations::bundles_inventory,
        operations::bundles_plan,
        operations::bundles_export,
    ),
    components(schemas(
        remotes::RemoteResponse, remotes::RemoteInput, remotes::HiddenField,
        distributions::DistributionResponse, distributions::DistributionInput,
        distributions::PrefetchInput,
        repositories::RepositoryResponse, repositories::RepositoryVersionResponse,
        repositories::RepositoryDistributionResponse, repositories::RemoveInput,
        content::TagResponse, content::ManifestResponse, content::BlobResponse,
        tasks::TaskResponse, tasks::AsyncOperationResponse, status::StatusResponse,
        crate::manage::HistoryResponse,
        crate::manage::PinState, bundles::SelectionInput, bundles::ExportInput,
        bundles_import::ImportResponse, bundles_import::ImportedResponse
    )),
    security(("basicAuth" = [])),
    modifiers(&PulpInfo)
)]
struct ApiDoc;

/// The HTTP Basic scheme the operations name, and the Pulp components in
/// `info` (the same list `status/` reports: pulp-cli compares the two).
struct PulpInfo;

impl utoipa::Modify for PulpInfo {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::extensions::Extensions;
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        let versions: serde_json::Map<String, serde_json::Value> = status::COMPONENTS
            .iter()
            .map(|c| (c.component.to_string(), json!(c.version)))
            .collect();
        openapi.info.extensions = Some(
            Extensions::builder()
                .add("x-pulp-app-versions", versions)
                .add("x-pulp-domain-enabled", false)
                .build(),
        );
    }
}

/// The OpenAPI document.
pub(super) fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
}

mod operations {
    use crate::api::http::Page;
    use crate::api::{
        bundles, bundles_import, content, distributions, remotes, repositories, status, tasks,
    };

    type Task = tasks::AsyncOperationResponse;

    /// Any of these names.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    struct NameIn {
        #[param(explode = false, rename = "name__in")]
        name_in: Option<Vec<String>>,
    }

    /// Any of these digests.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    struct DigestIn {
        #[param(explode = false, rename = "digest__in")]
        digest_in: Option<Vec<String>>,
    }

    /// What every list takes: Pulp's paging and its choice of fields
    /// (comma-separated, as pulp-glue sends them).
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    struct Paging {
        limit: Option<usize>,
        offset: Option<usize>,
        /// Only these fields of each result.
        #[param(explode = false)]
        fields: Option<Vec<String>>,
        /// Each result without these fields.
        #[param(explode = false)]
        exclude_fields: Option<Vec<String>>,
    }

    // --- remotes (remotes::handle) -------------------------------------

    #[utoipa::path(get, path = "/pulp/api/v3/remotes/container/pull-through/", tag = "Remotes: Pull-Through",
        params(("name" = Option<String>, Query), ("name__contains" = Option<String>, Query),
               ("name__icontains" = Option<String>, Query), NameIn,
               Paging),
        responses((status = 200, body = Page<remotes::RemoteResponse>)))]
    fn remotes_container_pull_through_list() {}

    #[utoipa::path(post, path = "/pulp/api/v3/remotes/container/pull-through/", tag = "Remotes: Pull-Through",
        request_body = remotes::RemoteInput,
        responses((status = 201, body = remotes::RemoteResponse), (status = 400, description = "Field → messages")))]
    fn remotes_container_pull_through_create() {}

    #[utoipa::path(get, path = "{container_container_pull_through_remote_href}", tag = "Remotes: Pull-Through",
        params(("container_container_pull_through_remote_href" = String, Path)),
        responses((status = 200, body = remotes::RemoteResponse), (status = 404)))]
    fn remotes_container_pull_through_read() {}

    #[utoipa::path(put, path = "{container_container_pull_through_remote_href}", tag = "Remotes: Pull-Through",
        params(("container_container_pull_through_remote_href" = String, Path)),
        request_body = remotes::RemoteInput,
        responses((status = 202, body = Task), (status = 400), (status = 404)))]
    fn remotes_container_pull_through_update() {}

    #[utoipa::path(patch, path = "{container_container_pull_through_remote_href}", tag = "Remotes: Pull-Through",
        params(("container_container_pull_through_remote_href" = String, Path)),
        request_body = remotes::RemoteInput,
        responses((status = 202, body = Task), (status = 400), (status = 404)))]
    fn remotes_container_pull_through_partial_update() {}

    #[utoipa::path(delete, path = "{container_container_pull_through_remote_href}", tag = "Remotes: Pull-Through",
        params(("container_container_pull_through_remote_href" = String, Path)),
        responses((status = 202, body = Task), (status = 404)))]
    fn remotes_container_pull_through_delete() {}

    // --- pull-through distributions (distributions::handle) ------------

    #[utoipa::path(get, path = "/pulp/api/v3/distributions/container/pull-through/", tag = "Distributions: Pull-Through",
        params(("name" = Option<String>, Query), ("name__contains" = Option<String>, Query),
               ("name__icontains" = Option<String>, Query), NameIn, ("base_path" = Option<String>, Query),
               Paging),
        responses((status = 200, body = Page<distributions::DistributionResponse>)))]
    fn distributions_container_pull_through_list() {}

    #[utoipa::path(post, path = "/pulp/api/v3/distributions/container/pull-through/", tag = "Distributions: Pull-Through",
        request_body = distributions::DistributionInput,
        responses((status = 202, body = Task), (status = 400)))]
    fn distributions_container_pull_through_create() {}

    #[utoipa::path(get, path = "{container_container_pull_through_distribution_href}", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        responses((status = 200, body = distributions::DistributionResponse), (status = 404)))]
    fn distributions_container_pull_through_read() {}

    #[utoipa::path(put, path = "{container_container_pull_through_distribution_href}", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        request_body = distributions::DistributionInput,
        responses((status = 202, body = Task), (status = 400), (status = 404)))]
    fn distributions_container_pull_through_update() {}

    #[utoipa::path(patch, path = "{container_container_pull_through_distribution_href}", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        request_body = distributions::DistributionInput,
        responses((status = 202, body = Task), (status = 400), (status = 404)))]
    fn distributions_container_pull_through_partial_update() {}

    #[utoipa::path(delete, path = "{container_container_pull_through_distribution_href}", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        responses((status = 202, body = Task), (status = 404)))]
    fn distributions_container_pull_through_delete() {}

    /// ferry's addition: fill the cache from a list, in a background task.
    #[utoipa::path(post, path = "{container_container_pull_through_distribution_href}prefetch/", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        request_body = distributions::PrefetchInput,
        responses((status = 202, body = Task), (status = 400), (status = 404), (status = 409)))]
    fn distributions_container_pull_through_prefetch() {}

    // --- per-repository distributions (repositories::handle_distributions)

    #[utoipa::path(get, path = "/pulp/api/v3/distributions/container/container/", tag = "Distributions: Container",
        params(("name" = Option<String>, Query), ("name__contains" = Option<String>, Query),
               ("name__icontains" = Option<String>, Query), NameIn, ("base_path" = Option<String>, Query),
               Paging),
        responses((status = 200, body = Page<repositories::RepositoryDistributionResponse>)))]
    fn distributions_container_container_list() {}

    #[utoipa::path(get, path = "{container_container_distribution_href}", tag = "Distributions: Container",
        params(("container_container_distribution_href" = String, Path)),
        responses((status = 200, body = repositories::RepositoryDistributionResponse), (status = 404)))]
    fn distributions_container_container_read() {}

    // --- repositories (repositories::handle) ---------------------------

    #[utoipa::path(get, path = "/pulp/api/v3/repositories/container/container/", tag = "Repositories: Container",
        params(("name" = Option<String>, Query), ("name__contains" = Option<String>, Query),
               ("name__icontains" = Option<String>, Query), NameIn,
               ("cache" = Option<String>, Query, description = "ferry's: only the repositories of this pull-through base path"),
               ("ordering" = Option<Vec<String>>, Query, explode = false, max_items = 1,
                description = "One of name, size, last_pulled, pulp_created; - for descending"),
               Paging),
        responses((status = 200, body = Page<repositories::RepositoryResponse>), (status = 400)))]
    fn repositories_container_container_list() {}

    #[utoipa::path(get, path = "{container_container_repository_href}", tag = "Repositories: Container",
        params(("container_container_repository_href" = String, Path)),
        responses((status = 200, body = repositories::RepositoryResponse), (status = 404)))]
    fn repositories_container_container_read() {}

    #[utoipa::path(delete, path = "{container_container_repository_href}", tag = "Repositories: Container",
        params(("container_container_repository_href" = String, Path)),
        responses((status = 202, body = Task), (status = 404)))]
    fn repositories_container_container_delete() {}

    /// Only tags can be removed; what nothing else references is freed.
    #[utoipa::path(post, path = "{container_container_repository_href}remove/", tag = "Repositories: Container",
        params(("container_container_repository_href" = String, Path)),
        request_body = repositories::RemoveInput,
        responses((status = 202, body = Task), (status = 400), (status = 404)))]
    fn repositories_container_container_remove() {}

    /// Only the current version is kept.
    #[utoipa::path(get, path = "{container_container_repository_href}versions/", tag = "Repositories: Container Versions",
        params(("container_container_repository_href" = String, Path),
               Paging),
        responses((status = 200, body = Page<repositories::RepositoryVersionResponse>), (status = 404)))]
    fn repositories_container_container_versions_list() {}

    #[utoipa::path(get, path = "{container_container_repository_version_href}", tag = "Repositories: Container Versions",
        params(("container_container_repository_version_href" = String, Path)),
        responses((status = 200, body = repositories::RepositoryVersionResponse), (status = 404)))]
    fn repositories_container_container_versions_read() {}

    // --- content (content::handle) -------------------------------------

    #[utoipa::path(get, path = "/pulp/api/v3/content/container/tags/", tag = "Content: Tags",
        params(("repository_version" = Option<String>, Query), ("name" = Option<String>, Query),
               ("name__contains" = Option<String>, Query), ("name__icontains" = Option<String>, Query), NameIn,
               ("digest" = Option<Vec<String>>, Query, explode = true, max_items = 1),
               ("media_type" = Option<String>, Query),
               Paging),
        responses((status = 200, body = Page<content::TagResponse>)))]
    fn content_container_tags_list() {}

    #[utoipa::path(get, path = "{container_tag_href}", tag = "Content: Tags",
        params(("container_tag_href" = String, Path)),
        responses((status = 200, body = content::TagResponse), (status = 404)))]
    fn content_container_tags_read() {}

    /// ferry's: asks the upstream where the tag points now, whatever its TTL.
    #[utoipa::path(post, path = "{container_tag_href}refresh/", tag = "Content: Tags",
        params(("container_tag_href" = String, Path)),
        responses((status = 200, body = content::TagResponse), (status = 404), (status = 502), (status = 504)))]
    fn content_container_tags_refresh() {}

    /// ferry's: keeps the tag (what it points at now and later) out of
    /// quota eviction; 400 when what is pinned would exceed a max_size.
    #[utoipa::path(post, path = "{container_tag_href}pin/", tag = "Content: Tags",
        params(("container_tag_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 400), (status = 404)))]
    fn content_container_tags_pin() {}

    /// ferry's: removes the tag's pin.
    #[utoipa::path(post, path = "{container_tag_href}unpin/", tag = "Content: Tags",
        params(("container_tag_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 404)))]
    fn content_container_tags_unpin() {}

    /// ferry's: keeps every tag of the repository out of quota eviction.
    #[utoipa::path(post, path = "{container_container_repository_href}pin/", tag = "Repositories: Container",
        params(("container_container_repository_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 400), (status = 404)))]
    fn repositories_container_container_pin() {}

    /// ferry's: removes the repository's pin.
    #[utoipa::path(post, path = "{container_container_repository_href}unpin/", tag = "Repositories: Container",
        params(("container_container_repository_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 404)))]
    fn repositories_container_container_unpin() {}

    /// ferry's: keeps the whole cache (every tag, also those pulled later)
    /// out of quota eviction.
    #[utoipa::path(post, path = "{container_container_pull_through_distribution_href}pin/", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 400), (status = 404)))]
    fn distributions_pull_through_pin() {}

    /// ferry's: removes the cache's pin.
    #[utoipa::path(post, path = "{container_container_pull_through_distribution_href}unpin/", tag = "Distributions: Pull-Through",
        params(("container_container_pull_through_distribution_href" = String, Path)),
        responses((status = 200, body = crate::manage::PinState), (status = 404)))]
    fn distributions_pull_through_unpin() {}

    #[utoipa::path(get, path = "/pulp/api/v3/content/container/manifests/", tag = "Content: Manifests",
        params(("repository_version" = Option<String>, Query), ("digest" = Option<String>, Query), DigestIn,
               ("media_type" = Option<String>, Query),
               Paging),
        responses((status = 200, body = Page<content::ManifestResponse>)))]
    fn content_container_manifests_list() {}

    #[utoipa::path(get, path = "{container_manifest_href}", tag = "Content: Manifests",
        params(("container_manifest_href" = String, Path)),
        responses((status = 200, body = content::ManifestResponse), (status = 404)))]
    fn content_container_manifests_read() {}

    #[utoipa::path(get, path = "/pulp/api/v3/content/container/blobs/", tag = "Content: Blobs",
        params(("repository_version" = Option<String>, Query), ("digest" = Option<String>, Query), DigestIn,
               Paging),
        responses((status = 200, body = Page<content::BlobResponse>)))]
    fn content_container_blobs_list() {}

    #[utoipa::path(get, path = "{container_blob_href}", tag = "Content: Blobs",
        params(("container_blob_href" = String, Path)),
        responses((status = 200, body = content::BlobResponse), (status = 404)))]
    fn content_container_blobs_read() {}

    // --- tasks and status ----------------------------------------------

    /// Every task is `completed`: ferry finishes its work before answering.
    #[utoipa::path(get, path = "{task_href}", tag = "Tasks",
        params(("task_href" = String, Path)),
        responses((status = 200, body = tasks::TaskResponse), (status = 404)))]
    fn tasks_read() {}

    /// Public; with the admin's credentials it also lists private upstreams.
    #[utoipa::path(get, path = "/pulp/api/v3/status/", tag = "Status",
        security((), ("basicAuth" = [])),
        responses((status = 200, body = status::StatusResponse)))]
    fn status_read() {}

    /// ferry's: the dashboard's history over the last hour (points at the
    /// sampling step, `history_step_secs`), day (5 minutes) or week
    /// (hours): requests and hits, bytes served and fetched upstream (and
    /// the difference, what the cache saved), downloads in flight, disk and
    /// pinned bytes; per cache its traffic, upstream reachability and
    /// response time; the top repositories by pulls and by size. Kept
    /// across restarts (a day of steps, 8 days of hours); the newest point
    /// runs up to `now`, so the totals of a fresh ferry equal `/metrics`.
    /// The admin sees everything; anyone else only with `browse = "public"`,
    /// and then only the public caches and their repositories.
    #[utoipa::path(get, path = "/pulp/api/v3/status/history/", tag = "Status",
        params(("span" = Option<String>, Query, description = "hour (default), day or week")),
        security((), ("basicAuth" = [])),
        responses((status = 200, body = crate::manage::HistoryResponse),
            (status = 400, description = "{\"span\": [message]}"),
            (status = 401, description = "Not the admin, and browse is not public")))]
    fn status_history_read() {}

    // --- bundles (ferry's addition) --------------------------------------

    /// ferry's: the sidecar manifest (`ferry-bundle.json`) that an export
    /// of the selection would write now, as its exact bytes (a client signs
    /// them and hands them back to `export/`).
    #[utoipa::path(post, path = "/pulp/api/v3/bundles/plan/", tag = "Bundles",
        request_body = bundles::SelectionInput,
        responses((status = 200, description = "ferry-bundle.json"), (status = 400), (status = 401)))]
    fn bundles_plan() {}

    /// ferry's: the bundle, streamed as it is written: an OCI image layout
    /// in a tar (`application/x-tar`, or `application/zstd` with `zstd`),
    /// `ferry-bundle.json` first. The body is a selection, or a manifest
    /// `plan/` answered with its signature entry (written verbatim).
    #[utoipa::path(post, path = "/pulp/api/v3/bundles/export/", tag = "Bundles",
        request_body = bundles::ExportInput,
        responses((status = 200, description = "the bundle (tar)"), (status = 400), (status = 401)))]
    fn bundles_export() {}

    /// ferry's addition: import a bundle (`ferry export`) or a plain OCI
    /// layout tar, streamed as the body. Every blob is verified while it
    /// streams; tags are committed only once all their content is; a
    /// refused bundle (bad signature, missing assumed blobs, bad entry)
    /// leaves nothing visible.
    #[utoipa::path(post, path = "/pulp/api/v3/bundles/import/", tag = "Bundles",
        params(
            ("map" = Option<String>, Query, description = "FROM=TO[,FROM=TO...]: import references under base path FROM under TO"),
            ("to" = Option<String>, Query, description = "<base_path>/<repository> for a plain layout's bare tags"),
            ("pin" = Option<bool>, Query, description = "pin every imported tag"),
            ("trusted_key" = Option<String>, Query, description = "the trusted public key's text: refuse a bundle it did not sign"),
        ),
        request_body(content = Vec<u8>, content_type = "application/x-tar",
            description = "the bundle: a tar (application/x-tar, application/octet-stream), zstd-compressed or not"),
        responses((status = 200, body = bundles_import::ImportResponse), (status = 400), (status = 415)))]
    fn bundles_import() {}

    /// ferry's addition: every blob and manifest some repository holds,
    /// with its size, and every tag (`ferry-inventory/1`): what `ferry
    /// export --have` leaves out of a differential bundle.
    #[utoipa::path(get, path = "/pulp/api/v3/bundles/inventory/", tag = "Bundles",
        responses((status = 200, description = "the inventory (format, created, source, references, blobs)")))]
    fn bundles_inventory() {}
}
