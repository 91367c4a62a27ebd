//! netrc files: the login and password for a host, as curl and ftp read them.
//!
//! A netrc file holds secrets, so nothing read from one is ever quoted in a message: errors
//! give the line and what is wrong, never the words that were there (a mistyped line may
//! well be a password).

use super::origin_url::normalize_host;

/// A login and password from netrc for one host.
#[derive(Clone, PartialEq, Eq)]
pub struct NetrcLogin {
    pub login: Vec<u8>,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for NetrcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetrcLogin")
            .field("login", &String::from_utf8_lossy(&self.login))
            .field("password", &"***")
            .finish()
    }
}

/// One `machine` (or, with `None`, the `default`) entry.
#[derive(Debug, Default)]
pub struct NetrcEntry {
    machine: Option<String>,
    login: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
}

/// The entry for `host`, else the `default` one, as curl picks it. An entry with neither a
/// login nor a password gives nothing.
pub fn find_login(entries: &[NetrcEntry], host: &str) -> Option<NetrcLogin> {
    let host = normalize_host(host);
    let entry = entries
        .iter()
        .find(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| normalize_host(m) == host)
        })
        .or_else(|| entries.iter().find(|e| e.machine.is_none()))?;
    if entry.login.is_none() && entry.password.is_none() {
        return None;
    }
    Some(NetrcLogin {
        login: entry.login.clone().unwrap_or_default(),
        password: entry.password.clone().unwrap_or_default(),
    })
}

/// A problem in a file, by line number, with a reason that quotes nothing from it.
pub type LineError = (usize, String);

/// Splits netrc text into words with the line each starts on.
struct Words<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    /// Whether nothing but blanks came before `pos` on its line.
    at_line_start: bool,
}

impl<'a> Words<'a> {
    fn new(bytes: &'a [u8]) -> Words<'a> {
        Words {
            bytes,
            pos: 0,
            line: 1,
            at_line_start: true,
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.at_line_start = true;
                }
                b' ' | b'\t' | b'\r' | b'\x0c' | b'\x0b' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn skip_to_line_end(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// The next word and its line; `#` as the first word of a line starts a comment. A
    /// word in double quotes may hold blanks, and `\"`, `\\`, `\n`, `\r`, `\t` escapes.
    fn next(&mut self) -> Result<Option<(Vec<u8>, usize)>, LineError> {
        loop {
            self.skip_blanks();
            match self.bytes.get(self.pos) {
                None => return Ok(None),
                Some(b'#') if self.at_line_start => self.skip_to_line_end(),
                Some(_) => break,
            }
        }
        self.at_line_start = false;
        let line = self.line;
        let mut word = Vec::new();
        if self.bytes.get(self.pos) == Some(&b'"') {
            self.pos += 1;
            loop {
                match self.bytes.get(self.pos) {
                    None => return Err((line, "a quoted word has no closing '\"'".to_owned())),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(Some((word, line)));
                    }
                    Some(b'\\') => {
                        let escaped = match self.bytes.get(self.pos + 1) {
                            None => {
                                return Err((line, "a quoted word has no closing '\"'".to_owned()));
                            }
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b't') => b'\t',
                            Some(&other) => other,
                        };
                        if escaped == b'\n' && self.bytes.get(self.pos + 1) == Some(&b'\n') {
                            self.line += 1;
                        }
                        word.push(escaped);
                        self.pos += 2;
                    }
                    Some(&b) => {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        word.push(b);
                        self.pos += 1;
                    }
                }
            }
        }
        while let Some(&b) = self.bytes.get(self.pos) {
            if b.is_ascii_whitespace() {
                break;
            }
            word.push(b);
            self.pos += 1;
        }
        Ok(Some((word, line)))
    }

    /// Skips a `macdef` body: everything up to the next empty line.
    fn skip_macro(&mut self) {
        let mut previous_newline = false;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            if b == b'\n' {
                self.line += 1;
                if previous_newline {
                    break;
                }
                previous_newline = true;
            } else if b != b'\r' {
                previous_newline = false;
            }
        }
        self.at_line_start = true;
    }
}

/// The `machine` and `default` entries of a netrc file, in order; `account` and `macdef`
/// are read past. Errors are a line number and a reason that quotes no word of the file.
pub fn parse_netrc(bytes: &[u8]) -> Result<Vec<NetrcEntry>, LineError> {
    let mut words = Words::new(bytes);
    let mut entries: Vec<NetrcEntry> = Vec::new();
    while let Some((word, line)) = words.next()? {
        let mut value = |what: &str| -> Result<Vec<u8>, LineError> {
            match words.next()? {
                Some((value, _)) => Ok(value),
                None => Err((line, format!("'{what}' is not followed by a value"))),
            }
        };
        match word.as_slice() {
            b"machine" => {
                let name = value("machine")?;
                let name = String::from_utf8(name)
                    .map_err(|_| (line, "a machine name is not UTF-8".to_owned()))?;
                entries.push(NetrcEntry {
                    machine: Some(name),
                    ..NetrcEntry::default()
                });
            }
            b"default" => entries.push(NetrcEntry::default()),
            b"login" | b"password" => {
                let key = if word == b"login" {
                    "login"
                } else {
                    "password"
                };
                let v = value(key)?;
                let Some(entry) = entries.last_mut() else {
                    return Err((
                        line,
                        format!("'{key}' comes before any 'machine' or 'default'"),
                    ));
                };
                if key == "login" {
                    entry.login = Some(v);
                } else {
                    entry.password = Some(v);
                }
            }
            b"account" => {
                value("account")?;
            }
            b"macdef" => {
                value("macdef")?;
                words.skip_macro();
            }
            other => {
                // Not quoted: a misplaced word may be a password.
                return Err((
                    line,
                    format!(
                        "unexpected word ({} bytes); expected machine, default, login, password, account or macdef",
                        other.len()
                    ),
                ));
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netrc(text: &str, host: &str) -> Option<(String, String)> {
        let entries = parse_netrc(text.as_bytes()).unwrap();
        find_login(&entries, host).map(|l| {
            (
                String::from_utf8(l.login).unwrap(),
                String::from_utf8(l.password).unwrap(),
            )
        })
    }

    #[test]
    fn netrc_picks_the_machine_then_the_default() {
        let text = "machine a.example login alice password pa\n\
                    # comment line\n\
                    machine b.example\n  login bob\n  password \"p b\\\"q\"\n\
                    macdef init\ncd /x\nmachine evil password no\n\n\
                    default login anon password guest\n";
        assert_eq!(
            netrc(text, "a.example"),
            Some(("alice".into(), "pa".into()))
        );
        assert_eq!(
            netrc(text, "B.Example."),
            Some(("bob".into(), "p b\"q".into()))
        );
        assert_eq!(netrc(text, "evil"), Some(("anon".into(), "guest".into())));
        assert_eq!(netrc("machine a password x", "b"), None);
        assert_eq!(netrc("machine a account z", "a"), None);
        assert_eq!(
            netrc("machine ::1 login v6 password p", "[::1]"),
            Some(("v6".into(), "p".into()))
        );
    }

    #[test]
    fn netrc_errors_give_the_line_and_never_the_words() {
        for (text, line) in [
            ("machine a\nlogin u\npasswd s3cret\n", 3),
            ("login u password s3cret\n", 1),
            ("machine a password \"s3cret\n", 1),
            ("machine a\n\npassword", 3),
        ] {
            let (n, reason) = match parse_netrc(text.as_bytes()) {
                Err(e) => e,
                Ok(_) => panic!("{text:?} parsed"),
            };
            assert_eq!(n, line, "{text:?}: {reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
    }
}
