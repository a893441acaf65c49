//! Secret references in configuration values, so a file can be committed while its secrets
//! live in the service's environment or in files: `${NAME}` anywhere in a value is replaced by
//! the environment variable NAME, and a URI parameter whose whole value is `@file:PATH` by that
//! file's content (trailing newline removed). Whatever a reference yields is registered as a
//! secret, so it is masked in any log line.

use crate::common::redact;

/// Expands the references in `value`. `env` looks variables up (the process environment, or a
/// map in tests); errors name the variable or file, never a value.
pub fn expand(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let with_env = expand_env(value, env)?;
    expand_files(&with_env)
}

fn expand_env(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed '${' (write ${NAME})".to_owned())?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "'${{{}}}' is not a variable reference (letters, digits, '_')",
                name.chars().take(32).collect::<String>()
            ));
        }
        let v = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        redact::register_secret(&v);
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

const FILE_PREFIX: &str = "@file:";

/// A field that is a secret on its own (not a URI): `${NAME}` references, or `@file:PATH` as
/// the whole value. The result is registered as a secret even when written literally.
pub fn expand_secret(
    field: &str,
    value: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let v = match value.strip_prefix(FILE_PREFIX) {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file for '{field}' ({path}): {e}"))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        None => expand_env(value, env)?,
    };
    redact::register_secret(&v);
    Ok(v)
}

fn expand_files(value: &str) -> Result<String, String> {
    let Some((base, query)) = value.split_once('?') else {
        return Ok(value.to_owned());
    };
    if !query.contains(FILE_PREFIX) {
        return Ok(value.to_owned());
    }
    let mut pairs = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((k, v)) if v.starts_with(FILE_PREFIX) => {
                let path = &v[FILE_PREFIX.len()..];
                let content = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the secret file for '{k}' ({path}): {e}"))?;
                let content = content.trim_end_matches(['\n', '\r']).to_owned();
                redact::register_secret(&content);
                pairs.push(format!("{k}={content}"));
            }
            _ => pairs.push(pair.to_owned()),
        }
    }
    Ok(format!("{base}?{}", pairs.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "SRT_PASSPHRASE").then(|| "from-the-environment".to_owned())
    }

    #[test]
    fn environment_references() {
        assert_eq!(
            expand("srt://:9000?passphrase=${SRT_PASSPHRASE}&latency=120", &env).unwrap(),
            "srt://:9000?passphrase=from-the-environment&latency=120"
        );
        assert_eq!(expand("no references", &env).unwrap(), "no references");
        let e = expand("srt://:9000?passphrase=${MISSING}", &env).unwrap_err();
        assert!(e.contains("MISSING is not set"), "{e}");
        assert!(expand("x=${", &env).unwrap_err().contains("unclosed"));
        assert!(expand("x=${1a}", &env).is_err());
    }

    #[test]
    fn file_references() {
        let dir = std::env::temp_dir().join(format!("sr-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pass");
        std::fs::write(&path, "from-a-file-123\n").unwrap();
        let uri = format!(
            "srt://:9000?latency=120&passphrase=@file:{}",
            path.display()
        );
        assert_eq!(
            expand(&uri, &env).unwrap(),
            "srt://:9000?latency=120&passphrase=from-a-file-123"
        );
        let e = expand("srt://:9000?passphrase=@file:/nonexistent/x", &env).unwrap_err();
        assert!(
            e.contains("passphrase") && e.contains("/nonexistent/x"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
