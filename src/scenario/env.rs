//! `${NAME}` and `${NAME:-default}` in scenario strings, filled from the environment.

use toml_edit::{DocumentMut, Item, Value};

/// Expands every string value of the document in place.
pub fn expand_document(document: &mut DocumentMut) -> Result<(), String> {
    let mut path = Vec::new();
    expand_table(document.as_table_mut(), &mut path)
}

fn expand_table(
    table: &mut dyn toml_edit::TableLike,
    path: &mut Vec<String>,
) -> Result<(), String> {
    for (key, item) in table.iter_mut() {
        path.push(key.get().to_string());
        expand_item(item, path)?;
        path.pop();
    }
    Ok(())
}

fn expand_item(item: &mut Item, path: &mut Vec<String>) -> Result<(), String> {
    match item {
        Item::Value(value) => expand_value(value, path),
        Item::Table(table) => expand_table(table, path),
        Item::ArrayOfTables(array) => {
            for (index, table) in array.iter_mut().enumerate() {
                path.push(index.to_string());
                expand_table(table, path)?;
                path.pop();
            }
            Ok(())
        }
        Item::None => Ok(()),
    }
}

fn expand_value(value: &mut Value, path: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::String(text) if text.value().contains("${") => {
            let expanded =
                expand(text.value(), |name| std::env::var(name).ok()).map_err(|problem| {
                    format!("{} (in {}): {problem}", problem_head(), path.join("."))
                })?;
            let decor = text.decor().clone();
            let mut replacement = toml_edit::Formatted::new(expanded);
            *replacement.decor_mut() = decor;
            *text = replacement;
            Ok(())
        }
        Value::Array(array) => {
            for (index, element) in array.iter_mut().enumerate() {
                path.push(index.to_string());
                expand_value(element, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::InlineTable(table) => expand_table(table, path),
        _ => Ok(()),
    }
}

fn problem_head() -> &'static str {
    "environment variable"
}

/// Replaces `${NAME}` and `${NAME:-default}` in `text` using `lookup`.
///
/// An unset variable without a default is an error naming it; an empty one counts as set.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            format!("unclosed ${{ in \"{text}\": write ${{NAME}} or ${{NAME:-default}}")
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid name \"{name}\" in ${{{inner}}}: use letters, digits and underscores"
            ));
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "{name} is not set: export it, or write ${{{name}:-default}} to give a default"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_string())
    }

    #[test]
    fn set_variable_is_used() {
        assert_eq!(expand("a${SET}b", lookup).unwrap(), "avalueb");
    }

    #[test]
    fn default_applies_when_unset() {
        assert_eq!(
            expand("${UNSET:-demo-secret}", lookup).unwrap(),
            "demo-secret"
        );
        assert_eq!(expand("${SET:-other}", lookup).unwrap(), "value");
    }

    #[test]
    fn unset_without_default_names_variable() {
        let error = expand("${VOLLEY_SECRET}", lookup).unwrap_err();
        assert!(error.contains("VOLLEY_SECRET is not set"), "{error}");
    }

    #[test]
    fn malformed_references_are_rejected() {
        assert!(expand("${OPEN", lookup).unwrap_err().contains("unclosed"));
        assert!(
            expand("${BAD NAME}", lookup)
                .unwrap_err()
                .contains("invalid name")
        );
    }

    #[test]
    fn text_without_references_is_unchanged() {
        assert_eq!(expand("{{row.id}} $5", lookup).unwrap(), "{{row.id}} $5");
    }
}
