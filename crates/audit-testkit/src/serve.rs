//! The real `serve` binary as a child process on a free loopback port, and
//! a minimal HTTP/1.1 client (one request per connection), for tests that
//! exercise the service exactly as a user runs it.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A free TCP port on loopback (bound, then released).
///
/// The socket is never made to listen, and it lets the server bind the
/// address while a copy of it lives on. Tests run in threads of one
/// process, and a child that another test spawns holds a copy of every
/// open descriptor until it executes its program: a listening socket
/// copied that way would accept the connections meant for the server
/// started on the port and reset them when the child let go of it (seen
/// as a first request reset with no reply), and a plain bound one would
/// make that server's `bind` fail.
pub fn free_port() -> u16 {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("a free loopback port");
    // After the bind: the kernel then picks a port no other socket holds.
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.local_addr().expect("its address").as_socket().expect("an IP address").port()
}

/// A running `serve`, killed when dropped (stopped gracefully by [`Served::stop`]).
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Served {
    /// Runs `command` (a `Command` that ends in `serve … --listen 127.0.0.1:{port}`)
    /// and waits until the port answers HTTP.
    pub fn start(mut command: Command, port: u16) -> Served {
        let mut child = command.stdout(Stdio::null()).spawn().expect("the binary starts");
        for _ in 0..400 {
            if answers_http(port) {
                return Served { child: Some(child), port };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve exited before listening: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not listen on port {port}");
    }

    /// `serve` of `bin` on `data` with `args` after `serve`, listening on a free port.
    pub fn binary(bin: &str, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let mut command = Command::new(bin);
        command
            .arg("--data-dir")
            .arg(data)
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied());
        Served::start(command, port)
    }

    /// One request to this server (see [`http`]).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
        http(self.port, method, path, token, body)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory (`VmRSS` in `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("the process is running");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().expect("serve exits")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether something on `port` answers a request with an HTTP response.
///
/// A bare connect is not enough: it succeeds against any listening socket
/// on the port, including one that will never answer (a copy of another
/// socket that a spawning child still holds, see [`free_port`]), and the
/// server would be taken as up before it is.
fn answers_http(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if s.set_read_timeout(Some(Duration::from_secs(2))).is_err()
        || s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// One HTTP/1.1 request over a fresh loopback connection (JSON body,
/// optional bearer token); the status code and body, or `None` when the
/// connection failed. Times out after 30 s.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A GET over a fresh loopback connection that keeps the body as bytes
/// (tiles are binary): the status, the response head, the body. `None`
/// when the connection failed. Times out after 30 s.
pub fn get_bytes(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = out[end + 4..].to_vec();
    // Bodies of unknown length come chunked; tiles and notes are small
    // enough that axum sends them with a Content-Length.
    Some((status, head, body))
}
