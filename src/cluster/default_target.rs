//! The operator's default cluster (`run`'s `--elasticsearch-*` flags), whose credentials and CA
//! bundle may come from files (mounted Secrets or ConfigMaps): read again when they change, so a
//! rotation reaches the operator without a restart.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::{
    connection::Target,
    es::{EsClient, EsConfig},
};

/// Where the default cluster's credentials come from, when they are a file (a mounted Secret):
/// read again when the file changes, so a rotated Secret reaches the operator without a restart.
#[derive(Clone, Debug)]
pub enum CredentialFile {
    ApiKey(std::path::PathBuf),
    Password {
        username: String,
        path: std::path::PathBuf,
    },
}

impl CredentialFile {
    fn path(&self) -> &std::path::Path {
        match self {
            CredentialFile::ApiKey(p) | CredentialFile::Password { path: p, .. } => p,
        }
    }

    fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let m = std::fs::metadata(self.path()).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    fn read(&self) -> Option<crate::es::EsAuth> {
        let text = std::fs::read_to_string(self.path()).ok()?;
        let value = secrecy::SecretString::from(text.trim().to_string());
        Some(match self {
            CredentialFile::ApiKey(_) => crate::es::EsAuth::ApiKey(value),
            CredentialFile::Password { username, .. } => crate::es::EsAuth::Basic {
                username: username.clone(),
                password: value,
            },
        })
    }
}

/// The operator's default cluster, with credentials and a CA bundle that may come from files.
pub struct DefaultTarget {
    target: Mutex<Target>,
    file: Option<CredentialFile>,
    ca_file: Option<std::path::PathBuf>,
    check_every: Duration,
    seen: Mutex<Seen>,
}

/// What `DefaultTarget` last saw of its files.
struct Seen {
    checked: Instant,
    credentials: Option<(std::time::SystemTime, u64)>,
    /// The CA file could not be used at the last check (warned once until it can again).
    ca_unusable: bool,
}

impl DefaultTarget {
    pub fn new(target: Target, file: Option<CredentialFile>) -> Self {
        let stamp = file.as_ref().and_then(CredentialFile::stamp);
        Self {
            target: Mutex::new(target),
            file,
            ca_file: None,
            check_every: Duration::from_secs(1),
            seen: Mutex::new(Seen {
                checked: Instant::now(),
                credentials: stamp,
                ca_unusable: false,
            }),
        }
    }

    /// The CA bundle comes from this file (a mounted Secret or ConfigMap, e.g. one that
    /// cert-manager or Vault rotates): read again when its content changes.
    pub fn with_ca_file(mut self, path: std::path::PathBuf) -> Self {
        self.ca_file = Some(path);
        self
    }

    /// How often the files are looked at (1 second unless set; tests use zero).
    pub fn with_check_interval(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// The target with the credentials and the CA as the files hold them now (checked at most
    /// every second; the credentials are read again only when the file's modification time or
    /// size changed, the CA when its content differs from the one in use). A CA file that cannot
    /// be read or holds no usable certificate keeps the previous CA, with a warning.
    pub fn current(&self) -> Target {
        if self.file.is_some() || self.ca_file.is_some() {
            let mut seen = self.seen.lock().expect("default target lock poisoned");
            if seen.checked.elapsed() >= self.check_every {
                seen.checked = Instant::now();
                if let Some(file) = &self.file {
                    let stamp = file.stamp();
                    if stamp != seen.credentials
                        && let Some(auth) = file.read()
                    {
                        seen.credentials = stamp;
                        info!(
                            "the operator's Elasticsearch credentials file changed: using the new credentials"
                        );
                        self.target
                            .lock()
                            .expect("default target lock poisoned")
                            .auth = auth;
                    }
                }
                if let Some(path) = &self.ca_file {
                    self.reload_ca(path, &mut seen);
                }
            }
        }
        self.target
            .lock()
            .expect("default target lock poisoned")
            .clone()
    }

    fn reload_ca(&self, path: &std::path::Path, seen: &mut Seen) {
        let pem = match std::fs::read(path) {
            Ok(pem) => pem,
            Err(e) => {
                if !seen.ca_unusable {
                    warn!(path = %path.display(), error = %e, "cannot read the operator's Elasticsearch CA file: keeping the CA in use");
                }
                seen.ca_unusable = true;
                return;
            }
        };
        let mut target = self.target.lock().expect("default target lock poisoned");
        if target.ca_pem.as_deref() == Some(pem.as_slice()) {
            seen.ca_unusable = false;
            return;
        }
        let check = EsConfig {
            ca_pem: Some(pem.clone()),
            ..EsConfig::new(target.url.clone(), crate::es::EsAuth::None)
        };
        match EsClient::new(&check, None, &target.key) {
            Ok(_) => {
                info!(path = %path.display(), "the operator's Elasticsearch CA file changed: using the new CA");
                target.ca_pem = Some(pem);
                seen.ca_unusable = false;
            }
            Err(e) => {
                if !seen.ca_unusable {
                    warn!(path = %path.display(), error = %e, "the operator's Elasticsearch CA file changed but cannot be used: keeping the CA in use");
                }
                seen.ca_unusable = true;
            }
        }
    }
}
