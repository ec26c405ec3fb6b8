//! `volley validate` and `volley run` reject broken scenarios with exit code 2 and a message
//! that names the problem, before anything is sent.

mod support;

use support::*;

const VALID: &str = r#"
name = "v"

[vars]
org = "o-1"

[target]
url = "http://127.0.0.1:9"

[auth]
type = "bearer"
token = "t"

[request]
path = "/api/v2/integrations/actions/a/execute"
body = '{"id": "{{row.id}}", "org_id": "{{org}}"}'

[data]
file = "rows.csv"

[[variant]]
name = "plain"

[load]
concurrency = [1, 2]
duration = "1s"
"#;

/// Each case: a description, an edit of the valid scenario (old, new), extra arguments, and
/// texts the error must contain.
struct Case {
    name: &'static str,
    replace: (&'static str, &'static str),
    args: &'static [&'static str],
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown top-level key",
        replace: ("name = \"v\"", "name = \"v\"\nnmae = 1"),
        args: &[],
        expect: &["unknown field `nmae`", "v.toml:3:1"],
    },
    Case {
        name: "unknown load key",
        replace: ("duration = \"1s\"", "durration = \"1s\""),
        args: &[],
        expect: &["durration", "remove it or correct its spelling"],
    },
    Case {
        name: "wrong type",
        replace: ("concurrency = [1, 2]", "concurrency = \"many\""),
        args: &[],
        expect: &["[1, 8, 32]", ":25:15"],
    },
    Case {
        name: "zero concurrency",
        replace: ("concurrency = [1, 2]", "concurrency = [0]"),
        args: &[],
        expect: &["load.concurrency", "invalid concurrency 0"],
    },
    Case {
        name: "negative concurrency",
        replace: ("concurrency = [1, 2]", "concurrency = -3"),
        args: &[],
        expect: &["invalid value -3"],
    },
    Case {
        name: "bad duration",
        replace: ("duration = \"1s\"", "duration = \"10\""),
        args: &[],
        expect: &["invalid duration \"10\"", "20s"],
    },
    Case {
        name: "zero duration",
        replace: ("duration = \"1s\"", "duration = \"0s\""),
        args: &[],
        expect: &["load.duration", "longer than 0s"],
    },
    Case {
        name: "bad throttle",
        replace: (
            "duration = \"1s\"",
            "duration = \"1s\"\nthrottle = \"fast\"",
        ),
        args: &[],
        expect: &["invalid rate \"fast\"", "300/60s"],
    },
    Case {
        name: "missing duration and iterations",
        replace: ("duration = \"1s\"", ""),
        args: &[],
        expect: &["missing duration or iterations"],
    },
    Case {
        name: "open model without rate",
        replace: ("concurrency = [1, 2]", "model = \"open\""),
        args: &[],
        expect: &["missing rate for the open model"],
    },
    Case {
        name: "open model with zero rate",
        replace: ("concurrency = [1, 2]", "model = \"open\"\nrate = [0]"),
        args: &[],
        expect: &["invalid rate 0"],
    },
    Case {
        name: "unknown model",
        replace: ("concurrency = [1, 2]", "model = \"closd\"\nconcurrency = 1"),
        args: &[],
        expect: &["unknown variant `closd`", "closed"],
    },
    Case {
        name: "unknown placeholder",
        replace: ("{{org}}", "{{orgg}}"),
        args: &[],
        expect: &["unknown placeholder {{orgg}}", "org, row.id"],
    },
    Case {
        name: "unknown column",
        replace: ("{{row.id}}", "{{row.ident}}"),
        args: &[],
        expect: &["unknown column in {{row.ident}}", "columns are id, name"],
    },
    Case {
        name: "missing data file",
        replace: ("rows.csv", "nope.csv"),
        args: &[],
        expect: &["cannot read data file", "nope.csv"],
    },
    Case {
        name: "empty data file",
        replace: ("rows.csv", "empty.csv"),
        args: &[],
        expect: &["has no header"],
    },
    Case {
        name: "ragged rows",
        replace: ("rows.csv", "ragged.csv"),
        args: &[],
        expect: &["line 3", "header has 2"],
    },
    Case {
        name: "non-UTF-8 data",
        replace: ("rows.csv", "latin1.csv"),
        args: &[],
        expect: &["not valid UTF-8"],
    },
    Case {
        name: "bad target URL",
        replace: ("http://127.0.0.1:9", "127.0.0.1:9"),
        args: &[],
        expect: &["target.url", "invalid URL"],
    },
    Case {
        name: "unknown auth type",
        replace: ("type = \"bearer\"", "type = \"basic\""),
        args: &[],
        expect: &["unknown variant `basic`", "oauth2-client-credentials"],
    },
    Case {
        name: "unset environment variable",
        replace: ("token = \"t\"", "token = \"${VOLLEY_TEST_UNSET_TOKEN}\""),
        args: &[],
        expect: &["VOLLEY_TEST_UNSET_TOKEN is not set", "auth.token"],
    },
    Case {
        name: "duplicate variant names",
        replace: (
            "name = \"plain\"",
            "name = \"plain\"\n[[variant]]\nname = \"plain\"",
        ),
        args: &[],
        expect: &["\"plain\" is used twice"],
    },
    Case {
        name: "path without slash",
        replace: ("path = \"/api", "path = \"api"),
        args: &[],
        expect: &["must start with /"],
    },
    Case {
        name: "throttle in open model",
        replace: (
            "concurrency = [1, 2]",
            "model = \"open\"\nrate = 5\nthrottle = \"5/1s\"",
        ),
        args: &[],
        expect: &["load.throttle", "remove throttle"],
    },
    Case {
        name: "set on a missing key",
        replace: ("", ""),
        args: &["--set", "load.durashun=5s"],
        expect: &["durashun", "--set load.durashun=5s"],
    },
    Case {
        name: "set without equals",
        replace: ("", ""),
        args: &["--set", "load.duration"],
        expect: &["KEY=VALUE"],
    },
    Case {
        name: "set with a bad value",
        replace: ("", ""),
        args: &["--set", "load.concurrency=[1,-2]"],
        expect: &["invalid value -2"],
    },
    Case {
        name: "threshold metric typo",
        replace: ("[load]", "[thresholds]\np99 = \"< 5\"\n[load]"),
        args: &[],
        expect: &["thresholds.p99", "unknown metric \"p99\"", "p99_ms"],
    },
    Case {
        name: "threshold condition",
        replace: ("[load]", "[thresholds]\np99_ms = \"below 5\"\n[load]"),
        args: &[],
        expect: &["invalid condition \"below 5\"", "< 500"],
    },
    Case {
        name: "variant threshold typo",
        replace: (
            "name = \"plain\"",
            "name = \"plain\"\nthresholds = { rate_43 = \"== 1\" }",
        ),
        args: &[],
        expect: &["variant.0.thresholds.rate_43", "rate_403"],
    },
    Case {
        name: "syntax error",
        replace: ("[load]", "[load"),
        args: &[],
        expect: &["v.toml:24:6"],
    },
];

#[test]
fn broken_scenarios_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", "id,name\n001,a\n");
    write_file(dir.path(), "empty.csv", "");
    write_file(dir.path(), "ragged.csv", "id,name\n1,a\n2\n");
    std::fs::write(dir.path().join("latin1.csv"), b"id,name\n1,caf\xe9\n").unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let text = VALID.replacen(case.replace.0, case.replace.1, 1);
        let path = write_file(dir.path(), "v.toml", &text);
        let mut args = vec!["validate".to_string(), path.display().to_string()];
        args.extend(case.args.iter().map(|arg| arg.to_string()));
        let output = volley_blocking(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}\n{stderr}",
                case.name,
                output.status.code()
            ));
            continue;
        }
        for expected in case.expect {
            if !stderr.contains(expected) {
                failures.push(format!(
                    "{}: message lacks {expected:?}:\n{stderr}",
                    case.name
                ));
            }
        }
    }
    assert!(CASES.len() >= 20);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn valid_scenario_passes_validate() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", "id,name\n001,a\n");
    let path = write_file(dir.path(), "v.toml", VALID);
    let output = volley_blocking(&["validate".to_string(), path.display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 variants, 2 cells, 1 data rows"),
        "{stdout}"
    );
}

#[test]
fn run_rejects_broken_scenario_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", "id,name\n001,a\n");
    let path = write_file(dir.path(), "v.toml", &VALID.replace("{{org}}", "{{nope}}"));
    let out = dir.path().join("report");
    let output = volley_blocking(&[
        "run".to_string(),
        path.display().to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(!out.exists(), "no report folder for a rejected scenario");
}

#[test]
fn shipped_scenarios_are_valid() {
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&scenarios).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "toml")
        {
            let output = volley_blocking(&["validate".to_string(), path.display().to_string()]);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                describe(&output)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
