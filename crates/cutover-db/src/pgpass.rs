//! Password look-up in a libpq password file (`~/.pgpass`).
//!
//! Each line is `hostname:port:database:username:password`; `*` matches
//! anything, `\:` and `\\` escape. The first matching line wins. As libpq
//! does, a file readable by group or others is ignored.

use std::path::Path;

/// The password for this connection, if the file has a matching line.
pub fn lookup(file: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return None;
        }
    }
    let contents = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    contents.lines().find_map(|line| {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let fields = split_fields(line);
        let [line_host, line_port, line_database, line_user, password] = fields.as_slice() else {
            return None;
        };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        let host_matches =
            matches(line_host, host) || (line_host == "localhost" && host.starts_with('/'));
        (host_matches
            && matches(line_port, &port)
            && matches(line_database, database)
            && matches(line_user, user))
        .then(|| password.clone())
    })
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => current.extend(characters.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    fields.push(current);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_matching_line_with_wildcards_and_escapes() {
        let directory = tempfile::tempdir().expect("temp dir");
        let file = directory.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:alice:nope\ndb.internal:*:lab:alice:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
        )
        .expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        assert_eq!(
            lookup(&file, "db.internal", 6543, "lab", "alice").as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(
            lookup(&file, "elsewhere", 5432, "x", "bob").as_deref(),
            Some("fallback")
        );
    }

    #[cfg(unix)]
    #[test]
    fn ignores_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().expect("temp dir");
        let file = directory.path().join("pgpass");
        std::fs::write(&file, "*:*:*:*:secret\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(lookup(&file, "h", 5432, "d", "u"), None);
    }
}
