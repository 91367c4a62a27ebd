//! systemd unit names as `Restart=` holds them: completed and checked as `systemctl
//! restart` would, so a typo is an error on the config's line and not a failed restart
//! after an update was installed.

use super::text::untrusted;

/// The unit types systemd knows, as they appear as unit name suffixes.
const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's limit on a unit name (`UNIT_NAME_MAX` minus its NUL).
pub const UNIT_NAME_MAX: usize = 255;

/// A `Restart=` name that `systemctl restart` would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid unit name '{name}' in Restart=: {why}")]
pub struct UnitNameError {
    /// The name as written, escaped and cut for printing.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The full unit name that `systemctl restart NAME` would restart, or why it would refuse.
///
/// As with `systemctl`, a name without a known unit type suffix means a service (`app` is
/// `app.service`, `app.v2` is `app.v2.service`). A name is at most 255 characters of ASCII
/// letters, digits and `:-_.\@`; a template (`foo@.service`) needs an instance
/// (`foo@bar.service`) to be restarted. Checking this when the config is read turns a typo into
/// an error on the config's line instead of a failed restart after an update has been installed.
///
/// # Errors
///
/// When the name is empty, has another character, is too long, or is not a restartable unit
/// name.
pub fn normalize_unit_name(name: &str) -> Result<String, UnitNameError> {
    let invalid = |why| UnitNameError {
        name: untrusted(name),
        why,
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !name.chars().all(allowed) {
        return Err(invalid(
            "only ASCII letters, digits and the characters : - _ . \\ @ may be used",
        ));
    }
    let has_type = name
        .rsplit_once('.')
        .is_some_and(|(_, suffix)| UNIT_TYPES.contains(&suffix));
    let full = if has_type {
        name.to_owned()
    } else {
        format!("{name}.service")
    };
    if full.len() > UNIT_NAME_MAX {
        return Err(invalid("a unit name has at most 255 characters"));
    }
    let prefix = full.rsplit_once('.').map_or("", |(prefix, _)| prefix);
    if prefix.is_empty() {
        return Err(invalid("there is no name before the unit type"));
    }
    if let Some((template, instance)) = prefix.split_once('@') {
        if template.is_empty() {
            return Err(invalid("there is no name before '@'"));
        }
        if instance.is_empty() {
            return Err(invalid(
                "a template cannot be restarted; name an instance, as in foo@bar.service",
            ));
        }
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_completed_as_systemctl_does() {
        for (given, full) in [
            ("app", "app.service"),
            ("app.service", "app.service"),
            ("app.socket", "app.socket"),
            ("app.v2", "app.v2.service"),
            ("getty@tty1", "getty@tty1.service"),
            ("foo@bar.service", "foo@bar.service"),
            ("sys-devices-x.device", "sys-devices-x.device"),
            ("a:b\\x2d_c.timer", "a:b\\x2d_c.timer"),
            ("data.mount", "data.mount"),
            ("user.slice", "user.slice"),
        ] {
            assert_eq!(normalize_unit_name(given).unwrap(), full, "{given}");
        }
        assert!(normalize_unit_name(&"a".repeat(247)).is_ok());
        assert!(normalize_unit_name(&"a".repeat(248)).is_err());
        assert!(normalize_unit_name(&format!("{}.service", "a".repeat(247))).is_ok());
    }

    #[test]
    fn unit_names_systemctl_would_refuse_are_errors() {
        for bad in [
            "",
            "app/x.service",
            "/home",
            "ünit.service",
            "a*b",
            "a\u{1b}[2J",
            ".service",
            "@x.service",
            "foo@.service",
            "foo@",
        ] {
            assert!(normalize_unit_name(bad).is_err(), "{bad:?}");
        }
        let err = normalize_unit_name("foo@.service").unwrap_err();
        assert!(err.to_string().contains("template"), "{err}");
    }
}
