//! `offsync serve` as a real process for the process-level tests (crash, instances).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// `offsync serve` as a child process, its log lines readable as they come.
pub struct Serve {
    child: Child,
    pub base: String,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Serve {
    pub fn start(url: &str, key_file: &std::path::Path) -> Serve {
        Self::start_with(url, key_file, &[])
    }

    /// With more `offsync serve` options.
    pub fn start_with(url: &str, key_file: &std::path::Path, extra: &[&str]) -> Serve {
        Self::start_with_env(url, key_file, extra, &[])
    }

    /// With more options and environment variables.
    pub fn start_with_env(
        url: &str,
        key_file: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_offsync"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--database-url", url, "--workers", "2"])
            .arg("--session-key-file")
            .arg(key_file)
            .args(extra)
            .envs(env.iter().copied())
            .env("OFFSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("offsync serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "offsync serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`.
    pub fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?}; the log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The log lines read so far (by [`Serve::wait_for`]).
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// SIGKILL: no shutdown, no flushing, no destructors.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
