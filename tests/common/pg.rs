//! A throwaway PostgreSQL server for one test binary: `initdb` into a
//! temporary directory, started on a free 127.0.0.1 port, stopped (and
//! its directory removed) when the binary's tests are done with it.
//!
//! The server binaries come from `SLUICE_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else PATH. As root (CI), the server runs
//! as the `postgres` user, which PostgreSQL insists on.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct Pg {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SLUICE_PG_BIN") {
        return d.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Pg {
    fn cmd(&self, tool: &str) -> Command {
        let exe = if self.bin.as_os_str().is_empty() {
            PathBuf::from(tool)
        } else {
            self.bin.join(tool)
        };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start() -> Pg {
        let dir = std::env::temp_dir().join(format!("sluice-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL directory");
        }
        let mut pg = Pg {
            port: 0,
            dir,
            bin: bin_dir(),
            as_postgres,
        };
        let data = pg.dir.join("data");
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "sluice", "--no-sync"])
            .output()
            .unwrap_or_else(|e| {
                panic!("initdb not found ({e}): install PostgreSQL's server, or set SLUICE_PG_BIN")
            });
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A free port; another process could take it before the server
        // binds, so a failed start tries another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                pg.dir.display()
            );
            let st = pg
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts, "-w", "-t", "60", "-l"])
                .arg(pg.dir.join("log"))
                .arg("start")
                .output()
                .unwrap();
            if st.status.success() {
                pg.port = port;
                return pg;
            }
        }
        let log = std::fs::read_to_string(pg.dir.join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// A URL for a fresh database `name` on the shared server.
    pub async fn database(&self, name: &str) -> String {
        let (c, conn) = tokio_postgres::connect(
            &format!("postgres://sluice@127.0.0.1:{}/postgres", self.port),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        for q in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&q).await.unwrap();
        }
        format!("postgres://sluice@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server and removes its directory once this test binary
    /// has exited (statics are never dropped): a small shell watches our
    /// process id.
    fn stop_when_we_exit(&self) {
        let pg_ctl = if self.bin.as_os_str().is_empty() {
            PathBuf::from("pg_ctl")
        } else {
            self.bin.join("pg_ctl")
        };
        let runuser = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser}{ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            ctl = pg_ctl.display(),
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

static SERVER: OnceLock<Pg> = OnceLock::new();

/// The test binary's server, started on first use.
pub fn server() -> &'static Pg {
    SERVER.get_or_init(|| {
        let pg = Pg::start();
        pg.stop_when_we_exit();
        pg
    })
}
