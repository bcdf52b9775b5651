//! A listener on loopback that records every connection made to it and passes the bytes
//! on to a real server behind it, so a test can show that a function never reached it
//! (zero connections) although the server behind would have answered and passed TLS.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The listener; it stops when dropped.
pub struct RecordingListener {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl RecordingListener {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((mut client, peer)) = listener.accept().await {
                record.lock().unwrap_or_else(|p| p.into_inner()).push(peer);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self { addr, seen, task })
    }

    /// Where every connection so far came from, in order.
    pub fn connections(&self) -> Vec<SocketAddr> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RecordingListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
