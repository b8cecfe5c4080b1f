//! Rules of the public API, checked on its committed listing (`tests/public_api.txt`,
//! made by `scripts/public-api.sh`, which CI keeps up to date): one path to each type,
//! every public enum and every configuration struct `#[non_exhaustive]`.

use std::collections::BTreeMap;

const LISTING: &str = include_str!("public_api.txt");

/// `(non_exhaustive, kind, path)` of each public struct, enum and trait.
fn types() -> Vec<(bool, &'static str, &'static str)> {
    LISTING
        .lines()
        .filter_map(|line| {
            let (marked, rest) = match line.strip_prefix("#[non_exhaustive] ") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let rest = rest.strip_prefix("pub ")?;
            let (kind, rest) = rest.split_once(' ')?;
            if !matches!(kind, "struct" | "enum" | "trait") {
                return None;
            }
            // The path ends at generics, a tuple body, or the space before a bound
            // (`Trait: Send`, whose ':' stays on the path).
            let end = rest.find(['<', '(', ' ']).unwrap_or(rest.len());
            Some((marked, kind, rest[..end].trim_end_matches(':')))
        })
        .collect()
}

fn name(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

#[test]
fn the_listing_is_there_and_lists_the_core_types() {
    let paths: Vec<_> = types().into_iter().map(|(_, _, path)| path).collect();
    for expected in ["twofactor::Engine", "twofactor::store::UserStore", "twofactor::mail::Mailer", "twofactor::Clock"]
    {
        assert!(paths.contains(&expected), "{expected} missing from {} types", paths.len());
    }
}

#[test]
fn each_type_has_one_path() {
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, _, path) in types() {
        seen.entry(name(path)).or_default().push(path);
    }
    let twice: Vec<_> = seen.values().filter(|paths| paths.len() > 1).collect();
    assert!(twice.is_empty(), "types reachable under more than one path: {twice:?}");
}

#[test]
fn every_public_enum_is_non_exhaustive_but_either() {
    let open: Vec<_> = types()
        .into_iter()
        .filter(|&(marked, kind, path)| kind == "enum" && !marked && path != "twofactor::Either")
        .collect();
    assert!(open.is_empty(), "enums without #[non_exhaustive]: {open:?}");
}

#[test]
fn every_configuration_struct_with_public_fields_is_non_exhaustive() {
    let configuration = |path: &str| {
        let name = name(path);
        ["Policy", "Params", "Config", "Window"].iter().any(|suffix| name.ends_with(suffix))
    };
    let has_public_fields = |path: &str| {
        LISTING.lines().any(|l| {
            l.starts_with(&format!("pub {path}::")) && {
                let field = &l[format!("pub {path}::").len()..];
                field.split_once(':').is_some_and(|(f, _)| f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            }
        })
    };
    let configs: Vec<_> =
        types().into_iter().filter(|&(_, kind, path)| kind == "struct" && configuration(path)).collect();
    assert!(configs.len() >= 8, "found only {configs:?}");
    let open: Vec<_> = configs.iter().filter(|&&(marked, _, path)| !marked && has_public_fields(path)).collect();
    assert!(open.is_empty(), "configuration structs with public fields, without #[non_exhaustive]: {open:?}");
}
