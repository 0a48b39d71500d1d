//! A TCP proxy on 127.0.0.1 that can be blackholed: it stops forwarding in
//! both directions but keeps every connection open, as a network partition
//! does. Whatever was read stays queued and is delivered after healing, as
//! TCP retransmission would.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    blackholed: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (blackholed, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(serve(client, upstream, rx.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            blackholed,
            task,
        })
    }

    /// The port to point clients at.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops (`true`) or resumes (`false`) forwarding.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection.
        self.task.abort();
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, blackholed: watch::Receiver<bool>) {
    let mut open = blackholed.clone();
    // A partitioned network does not let the connection through either.
    if open.wait_for(|on| !*on).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, blackholed.clone()) => {}
        () = pump(server_read, client_write, blackholed) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut blackholed: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if blackholed.wait_for(|on| !*on).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackholed.wait_for(|on| !*on).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
