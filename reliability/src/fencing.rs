//! A fencing sink (a store that keeps the highest fencing token it has seen
//! and rejects writes that carry a lower one) and the writer process that
//! holds a lock and writes to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celers_kube_lease::KubeLeaseLockBackend;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::mono::mono_ns;
use crate::Result;

/// One write that reached the sink.
#[derive(Clone, Debug)]
pub struct Write {
    /// Who wrote.
    pub writer: String,
    /// Its fencing token, if it had one.
    pub token: Option<u64>,
    /// When it arrived, on the monotonic clock.
    pub at_ns: u64,
    /// Whether the sink took it.
    pub accepted: bool,
}

#[derive(Debug, Default)]
struct State {
    highest: Option<u64>,
    writes: Vec<Write>,
}

/// The sink, listening on 127.0.0.1 for lines `WRITER TOKEN` (`-` for no
/// token, which it cannot check and so accepts). Stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Listens on a free port.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stream).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some((writer, token)) = line.split_once(' ') {
                            record(&state, writer, token.parse().ok());
                        }
                    }
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Where writers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A write from this process.
    pub fn write(&self, writer: &str, token: Option<u64>) -> bool {
        record(&self.state, writer, token)
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<Write> {
        self.state
            .lock()
            .map(|state| state.writes.clone())
            .unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(state: &Mutex<State>, writer: &str, token: Option<u64>) -> bool {
    let Ok(mut state) = state.lock() else {
        return false;
    };
    let accepted = match (token, state.highest) {
        (Some(token), Some(highest)) => token >= highest,
        _ => true,
    };
    if accepted {
        state.highest = state.highest.max(token);
    }
    state.writes.push(Write {
        writer: writer.to_owned(),
        token,
        at_ns: mono_ns(),
        accepted,
    });
    accepted
}

/// Takes the lock `key` (a guard, or with `plain` the trait's
/// `try_acquire`), then writes `OWNER TOKEN` to the sink every 50 ms without
/// looking at the lock again, until killed: the worst case of a holder that
/// pauses between its check and its write. Prints `lost MONO_NS` when the
/// guard says it lost the lock.
pub async fn write_until_killed(
    backend: &KubeLeaseLockBackend,
    key: &str,
    owner: &str,
    ttl_secs: u64,
    sink: SocketAddr,
    plain: bool,
) -> Result<()> {
    let ttl = Duration::from_secs(ttl_secs);
    let (token, guard) = if plain {
        while !backend.try_acquire(key, owner, ttl_secs).await? {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (None, None)
    } else {
        let guard = backend
            .lock(key, owner, ttl, Duration::from_secs(30))
            .await?
            .ok_or("the lock did not come free")?;
        (Some(guard.fencing_token().get()), Some(guard))
    };
    if let Some(guard) = &guard {
        let lost = guard.lost();
        tokio::spawn(async move {
            lost.cancelled().await;
            println!("lost {}", mono_ns());
        });
    }
    let mut stream = TcpStream::connect(sink).await?;
    let token = token.map_or("-".to_owned(), |token| token.to_string());
    loop {
        stream
            .write_all(format!("{owner} {token}\n").as_bytes())
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
