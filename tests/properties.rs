//! Property tests: the scenario parser, the template compiler and the CSV reader never panic
//! on arbitrary input, and merged tallies equal one tally that recorded everything.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use volley::data::DataSet;
use volley::metrics::{OUTCOMES, Tally};
use volley::scenario::{Plan, load_text};
use volley::template::{RenderContext, Template};

const VALID: &str = r#"name = "p"
[vars]
org = "o"
[target]
url = "http://127.0.0.1:9"
[request]
path = "/a/{{org}}"
body = '{"x": "{{seq}}", "p": "{{pad(3)}}"}'
[[variant]]
name = "v"
[load]
concurrency = [1, 2]
duration = "1s"
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scenario_parser_never_panics(text in ".{0,400}") {
        if let Ok(loaded) = load_text(&text, Path::new("p.toml"), &[]) {
            let _ = Plan::build(&loaded);
        }
    }

    #[test]
    fn mutated_scenarios_never_panic(position in 0usize..VALID.len(), insert in ".{0,12}", cut in 0usize..8) {
        let mut text = VALID.to_string();
        let start = (0..=position).rev().find(|index| text.is_char_boundary(*index)).unwrap_or(0);
        let end = (start + cut..=text.len()).find(|index| text.is_char_boundary(*index)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Ok(loaded) = load_text(&text, Path::new("p.toml"), &[]) {
            let _ = Plan::build(&loaded);
        }
    }

    #[test]
    fn overrides_never_panic(key in "[a-z_.0-9]{0,24}", value in ".{0,24}") {
        let _ = load_text(VALID, Path::new("p.toml"), &[format!("{key}={value}")]);
    }

    #[test]
    fn template_compiler_never_panics(text in ".{0,200}", seq in any::<u64>()) {
        let vars = BTreeMap::from([("org".to_string(), "o\"1".to_string())]);
        let columns = vec!["id".to_string(), "name".to_string()];
        if let Ok(template) = Template::compile(&text, &vars, Some(&columns)) {
            let row = vec!["007".to_string(), "a \"b\"\n".to_string()];
            let mut rng = SmallRng::seed_from_u64(seq);
            let mut context = RenderContext { row: &row, seq, worker: 1, rng: &mut rng };
            let _ = template.render_to_string(&mut context);
        }
    }

    #[test]
    fn csv_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(data) = DataSet::parse(&bytes, Path::new("rows.csv")) {
            prop_assert!(!data.is_empty());
            for index in 0..data.len() as u64 {
                prop_assert_eq!(data.row(index).len(), data.columns().len());
            }
        }
    }

    #[test]
    fn merged_tallies_equal_one_tally(samples in proptest::collection::vec((0usize..OUTCOMES.len(), 1u64..10_000_000, 0usize..4), 0..300)) {
        let mut whole = Tally::new(true);
        let mut parts: Vec<Tally> = (0..4).map(|_| Tally::new(true)).collect();
        for (outcome, latency, part) in &samples {
            whole.record(OUTCOMES[*outcome], *latency, *latency / 2);
            parts[*part].record(OUTCOMES[*outcome], *latency, *latency / 2);
        }
        let mut merged = Tally::new(true);
        for part in &parts {
            merged.merge(part);
        }
        prop_assert_eq!(merged.counts, whole.counts);
        prop_assert_eq!(merged.latency.len(), whole.latency.len());
        for quantile in [0.5, 0.9, 0.99, 0.999, 1.0] {
            prop_assert_eq!(merged.latency.value_at_quantile(quantile), whole.latency.value_at_quantile(quantile));
        }
        if !whole.latency.is_empty() {
            prop_assert!(merged.latency.value_at_quantile(0.99) <= merged.latency.max());
        }
    }
}
