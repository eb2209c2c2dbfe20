//! Issue 16: several ferry nodes on one object store (`[cluster]`).

use crate::support::*;

#[tokio::test]
async fn every_member_of_a_three_node_cluster_serves_a_pull() {
    let (upstream, image) = upstream_with_busybox().await;
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &upstream.url())], None);
    for node in &cluster.nodes {
        assert_skopeo_copy_matches(&via_ferry(node, BUSYBOX, "1.36"), &image).await;
    }
}
