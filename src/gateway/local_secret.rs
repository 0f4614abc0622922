//! The development secret of `consolidator all` on a loopback address: when no JWT_SECRET or
//! JWT_PUBLIC_KEY is configured, a random secret is made once in a local file only its owner
//! can read, and `consolidator token` signs with the same file. Nothing listening beyond this
//! machine ever runs on it: any other address without a key refuses to start.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use super::auth::MIN_SECRET_BYTES;

/// Random bytes in a generated secret (written as hex, so the file holds twice as many).
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LocalSecretError {
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds {found} bytes; a secret needs at least {MIN_SECRET_BYTES} (delete the file to get a new one)", path.display())]
    TooShort { path: PathBuf, found: usize },
    #[error("{} is readable by other users; `chmod 600` it or delete it to get a new one", path.display())]
    Exposed { path: PathBuf },
}

/// The secret in `path`, and whether it was created just now.
pub fn load_or_create(path: &Path) -> Result<(String, bool), LocalSecretError> {
    match read(path) {
        Ok(secret) => Ok((secret, false)),
        Err(LocalSecretError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            create(path).map(|secret| (secret, true))
        }
        Err(error) => Err(error),
    }
}

/// The secret a previous `load_or_create` wrote.
pub fn read(path: &Path) -> Result<String, LocalSecretError> {
    let read_error = |source| LocalSecretError::Read { path: path.to_owned(), source };
    let text = fs::read_to_string(path).map_err(read_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(read_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(LocalSecretError::Exposed { path: path.to_owned() });
        }
    }
    let secret = text.trim().to_owned();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(LocalSecretError::TooShort { path: path.to_owned(), found: secret.len() });
    }
    Ok(secret)
}

fn create(path: &Path) -> Result<String, LocalSecretError> {
    let create_error = |source| LocalSecretError::Create { path: path.to_owned(), source };
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(create_error)?;
    }
    let mut bytes = [0u8; SECRET_BYTES];
    rand::fill(&mut bytes);
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut options = fs::OpenOptions::new();
    // create_new: two processes starting at once cannot both write; the loser reads.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{secret}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(create_error)?;
            Ok(secret)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read(path),
        Err(error) => Err(create_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("consolidator-secret-{}", uuid::Uuid::new_v4().simple())).join("jwt-secret")
    }

    #[test]
    fn a_secret_is_made_once_private_and_read_back() {
        let path = scratch();
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.len(), 2 * SECRET_BYTES);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, created) = load_or_create(&path).unwrap();
        assert_eq!((again.as_str(), created), (first.as_str(), false));
        assert_eq!(read(&path).unwrap(), first);
        let (other, _) = load_or_create(&scratch()).unwrap();
        assert_ne!(other, first, "each file gets its own random secret");
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_short_or_exposed_file_is_refused() {
        let path = scratch();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "short\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(matches!(read(&path), Err(LocalSecretError::TooShort { found: 5, .. })));
            fs::write(&path, "x".repeat(64)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(read(&path), Err(LocalSecretError::Exposed { .. })));
        }
        assert!(matches!(read(&scratch()), Err(LocalSecretError::Read { .. })));
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }
}
