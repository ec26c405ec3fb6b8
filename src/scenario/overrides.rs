//! `--set key.path=value` overrides, applied to the parsed document before serde reads it.

use toml_edit::{DocumentMut, Item, TableLike, Value};

/// Applies one `KEY=VALUE` override. The value is read as TOML (`5`, `[1, 4]`, `true`,
/// `"text"`) and otherwise taken as a string, so `--set load.duration=5s` works unquoted.
/// A number in the path indexes an array of tables: `variant.1.body=...`.
pub fn apply(document: &mut DocumentMut, item: &str) -> Result<(), String> {
    let (key, raw) = item.split_once('=').ok_or_else(|| {
        format!("invalid --set \"{item}\": write KEY=VALUE, such as --set load.duration=5s")
    })?;
    let parts: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(format!(
            "invalid --set \"{item}\": the key \"{key}\" has an empty part; write a dotted path such as load.duration"
        ));
    }
    set_path(document.as_table_mut(), &parts, raw.trim())
        .map_err(|problem| format!("invalid --set \"{item}\": {problem}"))
}

fn set_path(table: &mut dyn TableLike, parts: &[&str], raw: &str) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("the key is empty")?;
    if rest.is_empty() {
        // A key that holds text keeps holding text, so `request.body={}` stays a string.
        let replaces_text = table.get(first).is_some_and(|item| item.is_str());
        let value = match raw.parse::<Value>() {
            Ok(value) if !replaces_text || value.is_str() => value,
            _ => Value::from(raw),
        };
        table.insert(first, Item::Value(value));
        return Ok(());
    }
    if table.get(first).is_none() {
        table.insert(first, Item::Table(toml_edit::Table::new()));
    }
    let child = table.get_mut(first).ok_or("the key is missing")?;
    if let Item::ArrayOfTables(array) = child {
        let index: usize = rest[0]
            .parse()
            .map_err(|_| format!("{first} is a list; index it with a number, such as {first}.0"))?;
        let count = array.len();
        let element = array.get_mut(index).ok_or_else(|| {
            format!("{first}.{index} does not exist; {first} has {count} entries, counted from 0")
        })?;
        if rest.len() < 2 {
            return Err(format!(
                "name a key inside {first}.{index}, such as {first}.{index}.body"
            ));
        }
        return set_path(element, &rest[1..], raw);
    }
    let child = child
        .as_table_like_mut()
        .ok_or_else(|| format!("{first} is a value, not a table; check the key path"))?;
    set_path(child, rest, raw)
}

/// Returns the override whose last key or value is `culprit`, to say where a bad entry came from.
pub fn blame<'a>(overrides: &'a [String], culprit: &str) -> Option<&'a str> {
    let culprit = culprit.trim().trim_matches('"');
    if culprit.is_empty() {
        return None;
    }
    overrides.iter().map(String::as_str).find(|item| {
        item.split_once('=').is_some_and(|(key, value)| {
            key.rsplit('.').next().map(str::trim) == Some(culprit)
                || value.trim().trim_matches('"') == culprit
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(text: &str, items: &[&str]) -> Result<String, String> {
        let mut document: DocumentMut = text.parse().unwrap();
        for item in items {
            apply(&mut document, item)?;
        }
        Ok(document.to_string())
    }

    #[test]
    fn creates_missing_tables() {
        let text = apply_all("name = \"a\"\n", &["target.mock.rate_limit=10/1s"]).unwrap();
        assert!(text.contains("rate_limit = \"10/1s\""), "{text}");
    }

    #[test]
    fn indexes_arrays_of_tables() {
        let source = "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\nbody = \"\"\n";
        let text = apply_all(source, &["variant.1.body={}"]).unwrap();
        assert!(text.contains("body = \"{}\""), "{text}");
        let error = apply_all(source, &["variant.5.body=x"]).unwrap_err();
        assert!(error.contains("has 2 entries"), "{error}");
    }

    #[test]
    fn value_is_not_a_table() {
        let error = apply_all("name = \"a\"\n", &["name.x=1"]).unwrap_err();
        assert!(error.contains("name is a value"), "{error}");
    }
}
