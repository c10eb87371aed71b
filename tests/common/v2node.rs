//! An instance in this process serving Stratum V2 as well as V1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice::config::Config;
use sluice::run::Running;
use sluice_sv2::noise::AuthorityPublicKey;
use tokio_util::sync::CancellationToken;

/// A running instance with both listeners served; stopped when dropped.
pub struct V2Node {
    /// Its V1 listener.
    pub v1: SocketAddr,
    /// Its V2 listener.
    pub v2: SocketAddr,
    /// The authority key its certificate is signed by.
    pub authority: AuthorityPublicKey,
    pub running: Running,
    pub cancel: CancellationToken,
}

impl Drop for V2Node {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts `cfg` with a fresh authority key (in a folder of its own under
/// the scratch dir, after `name`: tests run at once in one process) and a
/// V2 listener on 127.0.0.1.
pub async fn launch(mut cfg: Config, name: &str) -> V2Node {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = super::scratch_dir().join(format!("{name}-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("authority.toml");
    let _ = std::fs::remove_file(&auth);
    sluice::keys::keygen(&auth).unwrap();
    cfg.v2.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.v2.authority_key = Some(auth);
    let (v1, mut running, cancel) = super::serve(&cfg).await;
    let (listener, identity, authority) = running.listener_v2.take().unwrap();
    let v2 = listener.local_addr().unwrap();
    tokio::spawn(running.engine.clone().serve_v2(listener, identity));
    V2Node {
        v1,
        v2,
        authority,
        running,
        cancel,
    }
}
