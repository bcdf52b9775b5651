//! A TCP proxy in front of one OpenBao node, on the node's own IP and another port, that
//! makes the node's answer to `sys/init` slow: it holds the first bytes the node sends after it reports itself
//! initialised (the answer to `sys/init`, which is sent once the node is initialised) for
//! a set time, and passes everything else through at once. TLS passes through untouched,
//! so the client still verifies the node's own certificate.
//!
//! Whether the node is initialised is asked of the node directly (`GET sys/init`), not
//! through the proxy, before each chunk it sends until the hold has happened.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The proxy; it stops when dropped.
pub struct SlowInitProxy {
    /// The port it listens on, on the node's IP: the `VAULT_PORT` to give the function
    /// instead of the node's, so that the node's certificate still names the address the
    /// function connects to.
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    node: std::net::SocketAddr,
    node_api: String,
    hold: Duration,
    http: reqwest::Client,
    armed: AtomicBool,
    held: AtomicUsize,
}

impl SlowInitProxy {
    /// A proxy to the node at `node_api` (`https://<ip>:<port>`, certificate signed by
    /// `ca_pem`) that holds the answer to `sys/init` for `hold`.
    pub async fn start(node_api: &str, ca_pem: &str, hold: Duration) -> Result<Self> {
        let node: std::net::SocketAddr = node_api
            .trim_start_matches("https://")
            .parse()
            .with_context(|| format!("no IP and port in {node_api}"))?;
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())?)
            .timeout(Duration::from_secs(10))
            .build()?;
        let listener = TcpListener::bind((node.ip(), 0)).await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            node,
            node_api: node_api.to_owned(),
            hold,
            http,
            armed: AtomicBool::new(true),
            held: AtomicUsize::new(0),
        });
        let accepting = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = accepting.clone();
                tokio::spawn(async move {
                    let _ = state.relay(client).await;
                });
            }
        });
        Ok(Self { port, state, task })
    }

    /// How many answers were held (1 once `sys/init` has answered).
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }
}

impl Drop for SlowInitProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    async fn relay(self: Arc<Self>, client: TcpStream) -> Result<()> {
        let node = TcpStream::connect(self.node).await?;
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_node, mut to_node) = node.into_split();
        let upstream = async move {
            let _ = tokio::io::copy(&mut from_client, &mut to_node).await;
            let _ = to_node.shutdown().await;
        };
        let downstream = async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from_node.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if self.armed.load(Ordering::SeqCst)
                    && self.node_initialised().await
                    && self.armed.swap(false, Ordering::SeqCst)
                {
                    tokio::time::sleep(self.hold).await;
                    self.held.fetch_add(1, Ordering::SeqCst);
                }
                if to_client.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown().await;
        };
        tokio::join!(upstream, downstream);
        Ok(())
    }

    async fn node_initialised(&self) -> bool {
        let url = format!("{}/v1/sys/init", self.node_api);
        let Ok(response) = self.http.get(&url).send().await else {
            return false;
        };
        response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["initialized"] == serde_json::Value::Bool(true))
    }
}
