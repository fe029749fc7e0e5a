//! A private OpenLDAP directory for the LDAP login tests: the Debian package's `slapd` (installed
//! by scripts/install-deps.sh; no service is started), run as a plain process in the foreground.
//!
//! Each directory has its own `slapd.conf`, database directory and certificates under a scratch
//! directory, listens on its own ports on 127.0.0.1 (`ldap://`, which also offers StartTLS, and
//! `ldaps://`; also on [`OTHER_ADDRESS`]), and is loaded with [`PEOPLE`] (by `slapadd`, before it starts). The TLS
//! certificate is issued for `localhost` and 127.0.0.1 by a throw-away CA made here with
//! `openssl`; a second CA, which issued nothing the directory uses, stands for a wrong CA. It is
//! stopped by its PID when dropped, and can be restarted on the same ports. It logs at the
//! `stats` level (a line per connection and operation) to `slapd.log`.
//!
//! slapd does not refuse to run as root (unlike PostgreSQL): it keeps the caller's user, since
//! no `-u` is given.

use crate::free_port;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const BASE_DN: &str = "dc=wazo,dc=test";
/// Where the users are.
pub const PEOPLE_DN: &str = "ou=people,dc=wazo,dc=test";
/// The service account of a "service bind" and its password.
pub const SERVICE_DN: &str = "cn=wazo-auth,dc=wazo,dc=test";
pub const SERVICE_PASSWORD: &str = "service-secret";

/// Another loopback address the directory also listens on, which its certificate does not
/// name (its certificate names `localhost` and 127.0.0.1): a host-name mismatch.
pub const OTHER_ADDRESS: &str = "127.0.0.2";

/// A person of the directory: its `uid`, `cn`, password and `mail`, and the DN of its entry.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub uid: &'static str,
    pub cn: &'static str,
    pub password: &'static str,
    pub mail: &'static str,
    /// The entry's DN, relative to [`PEOPLE_DN`] (`uid=alice`, `cn=Smith\, John`).
    pub rdn: &'static str,
}

/// The people loaded in every directory. `dup` exists twice (under `ou=people` and under
/// `ou=staff,ou=people`): a subtree search for it finds two entries.
pub const PEOPLE: &[Person] = &[
    Person {
        uid: "alice",
        cn: "Alice Liddell",
        password: "alice-ldap-pw",
        mail: "alice@wazo.test",
        rdn: "uid=alice",
    },
    Person {
        uid: "bob",
        cn: "Bob Builder",
        password: "bob-ldap-pw",
        mail: "Bob@Wazo.Test",
        rdn: "uid=bob",
    },
    Person {
        uid: "nomail",
        cn: "No Mail",
        password: "nomail-pw",
        mail: "nobody-in-wazo@wazo.test",
        rdn: "uid=nomail",
    },
    Person {
        uid: "star*",
        cn: "Star Entry",
        password: "star-pw",
        mail: "star@wazo.test",
        rdn: "uid=star*",
    },
    Person {
        uid: "smith",
        cn: "Smith, John+Jr=<x>;\"q\"",
        password: "smith-pw",
        mail: "smith@wazo.test",
        rdn: "cn=Smith\\, John\\+Jr\\=\\<x\\>\\;\\\"q\\\"",
    },
    Person {
        uid: "dup",
        cn: "Dup One",
        password: "dup-pw",
        mail: "dup1@wazo.test",
        rdn: "uid=dup",
    },
    Person {
        uid: "dup",
        cn: "Dup Two",
        password: "dup-pw",
        mail: "dup2@wazo.test",
        rdn: "uid=dup,ou=staff",
    },
];

/// The person named `uid` (the first one, for `dup`).
pub fn person(uid: &str) -> Person {
    *PEOPLE
        .iter()
        .find(|p| p.uid == uid)
        .unwrap_or_else(|| panic!("no person {uid:?} in the directory"))
}

/// The LDIF of the directory's entries.
fn entries() -> String {
    let mut out = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: wazo\no: Wazo test\n\n\
         dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=staff,{PEOPLE_DN}\nobjectClass: organizationalUnit\nou: staff\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: wazo-auth\nuserPassword: {SERVICE_PASSWORD}\n\n"
    );
    for p in PEOPLE {
        out.push_str(&format!(
            "dn: {},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {}\ncn: {}\nsn: {}\n\
             mail: {}\nuserPassword: {}\n\n",
            p.rdn, p.uid, p.cn, p.cn, p.mail, p.password
        ));
    }
    out
}

fn slapd_binary() -> PathBuf {
    for candidate in ["/usr/sbin/slapd", "/usr/local/sbin/slapd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("slapd is not installed: run scripts/install-deps.sh");
}

fn slapadd_binary() -> PathBuf {
    for candidate in ["/usr/sbin/slapadd", "/usr/local/sbin/slapadd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("slapadd is not installed: run scripts/install-deps.sh");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`) made with `openssl`.
fn make_ca(dir: &Path, name: &str) {
    run(
        Command::new("openssl").current_dir(dir).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=wazo-auth test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]),
        "openssl (CA)",
    );
}

/// The server's certificate (`server.pem`, `server.key`) for `localhost` and 127.0.0.1, issued
/// by the CA `ca`.
fn make_server_cert(dir: &Path) {
    run(
        Command::new("openssl").current_dir(dir).args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]),
        "openssl (server key)",
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(
        Command::new("openssl").current_dir(dir).args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]),
        "openssl (server certificate)",
    );
}

/// A running private directory.
pub struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    /// The `ldap://` port (StartTLS offered).
    pub port: u16,
    /// The `ldaps://` port.
    pub ldaps_port: u16,
}

impl Slapd {
    /// Starts a directory loaded with [`PEOPLE`]; panics (with slapd's output) if it does not
    /// accept connections within 30 s.
    pub fn start() -> Slapd {
        let dir = crate::scratch_dir("slapd");
        std::fs::create_dir_all(dir.join("db")).expect("create the db directory");
        make_ca(&dir, "ca");
        make_ca(&dir, "other-ca");
        make_server_cert(&dir);
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"cn=admin,{BASE_DN}\"\n\
             directory {d}/db\n\
             access to attrs=userPassword by anonymous auth by self read by * none\n\
             access to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).expect("write slapd.conf");
        std::fs::write(dir.join("entries.ldif"), entries()).expect("write entries.ldif");
        run(
            Command::new(slapadd_binary()).args([
                "-f",
                &format!("{d}/slapd.conf"),
                "-l",
                &format!("{d}/entries.ldif"),
            ]),
            "slapadd",
        );
        for _ in 0..5 {
            let (port, ldaps_port) = (free_port(), free_port());
            let mut slapd = Slapd {
                child: None,
                dir: dir.clone(),
                port,
                ldaps_port,
            };
            if slapd.spawn() {
                return slapd;
            }
            slapd.kill();
        }
        panic!(
            "slapd never accepted connections; log:\n{}",
            std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default()
        );
    }

    /// Runs slapd on the directory's ports (its log appended to `slapd.log`, at the `stats`
    /// level: a line per connection and per operation); whether it accepts connections within
    /// 30 s.
    fn spawn(&mut self) -> bool {
        let d = self.dir.display();
        let (port, ldaps_port) = (self.port, self.ldaps_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("slapd.log"))
            .expect("open slapd.log");
        let child = Command::new(slapd_binary())
            .args([
                "-d",
                "256",
                "-f",
                &format!("{d}/slapd.conf"),
                "-h",
                &format!(
                    "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{ldaps_port}/ \
                     ldap://{OTHER_ADDRESS}:{port}/ ldaps://{OTHER_ADDRESS}:{ldaps_port}/"
                ),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("spawn slapd");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    /// Stops the directory (by its PID) and starts it again on the same ports, with the same
    /// entries: every connection to it is closed.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn() {
            self.kill();
            assert!(
                Instant::now() < deadline,
                "slapd did not start again on its ports; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            let up = |port| {
                TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            };
            if up(self.port) && up(self.ldaps_port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The PID of the slapd process.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The CA that issued the directory's certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that issued nothing the directory uses (PEM file).
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// slapd's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// Hangs the directory (SIGSTOP): connections are accepted by the kernel, never answered.
    pub fn freeze(&self) {
        unsafe {
            libc::kill(self.pid(), libc::SIGSTOP);
        }
    }

    /// Resumes a frozen directory (SIGCONT).
    pub fn thaw(&self) {
        unsafe {
            libc::kill(self.pid(), libc::SIGCONT);
        }
    }

    /// Stops the directory (by its PID) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
