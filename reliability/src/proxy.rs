//! A TCP proxy on 127.0.0.1 that can be blackholed: it stops forwarding in
//! both directions but keeps every connection open, as a network partition
//! does. Whatever was read stays queued and is delivered after healing, as
//! TCP retransmission would. It can also delay every byte by a fixed time
//! in each direction (a long network path), without limiting throughput.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    blackholed: watch::Sender<bool>,
    delay: watch::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (blackholed, rx) = watch::channel(false);
        let (delay, delay_rx) = watch::channel(Duration::ZERO);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(serve(client, upstream, rx.clone(), delay_rx.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            blackholed,
            delay,
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

    /// Delays every byte by `delay` in each direction from now on (so a
    /// round trip by twice that), on connections old and new.
    pub fn set_delay(&self, delay: Duration) {
        self.delay.send_replace(delay);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection.
        self.task.abort();
    }
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    blackholed: watch::Receiver<bool>,
    delay: watch::Receiver<Duration>,
) {
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
        () = pump(client_read, server_write, blackholed.clone(), delay.clone()) => {}
        () = pump(server_read, client_write, blackholed, delay) => {}
    }
}

/// Forwards one direction: a reader that stamps each chunk with when it may
/// go out, and a writer that sends it then, so a delay adds latency only.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackholed: watch::Receiver<bool>,
    delay: watch::Receiver<Duration>,
) {
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut open = blackholed.clone();
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if open.wait_for(|on| !*on).await.is_err() {
                return;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let due = Instant::now() + *delay.borrow();
            if chunks.send((due, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let mut open = blackholed;
    let write = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if open.wait_for(|on| !*on).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what was read before the reader ended (EOF).
    let (_, ()) = tokio::join!(read, write);
}
