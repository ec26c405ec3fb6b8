//! Turns a loaded scenario into a plan: compiled variants, the data set and the list of cells.
//! Every semantic check lives here, so `volley validate` and `volley run` reject the same
//! scenarios.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Method;
use http::header::{HeaderName, HeaderValue};

use super::{Auth, LoadedScenario, Model, Scenario, ScenarioError, Variant, location};
use crate::data::{DataSet, RowOrder};
use crate::engine::stages::{StageSpec, Stages};
use crate::template::Template;
use crate::thresholds::{self, Threshold};

/// The default `max_in_flight` of the open model.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100;

/// The maximum number of workers or in-flight requests in one cell.
pub const MAX_WORKERS: u32 = 5_000;

/// A variant with its path, headers and body compiled.
#[derive(Debug, Clone)]
pub struct CompiledVariant {
    /// The variant's name in reports.
    pub name: String,
    /// The HTTP method.
    pub method: Method,
    /// The path and query.
    pub path: Template,
    /// Header names with their value templates, in scenario order.
    pub headers: Vec<(HeaderName, Template)>,
    /// The body.
    pub body: Template,
    /// The thresholds that decide this variant's verdicts.
    pub thresholds: Vec<Threshold>,
}

/// The load applied in one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadPoint {
    /// `concurrency` workers sending back to back.
    Closed {
        /// The number of workers.
        concurrency: u32,
    },
    /// `rate` arrivals per second with at most `max_in_flight` outstanding.
    Open {
        /// Requests per second.
        rate: f64,
        /// The maximum number of requests outstanding at once.
        max_in_flight: u32,
    },
}

impl LoadPoint {
    /// Returns the number of workers the cell starts.
    pub fn workers(&self) -> u32 {
        match self {
            LoadPoint::Closed { concurrency } => *concurrency,
            LoadPoint::Open { max_in_flight, .. } => *max_in_flight,
        }
    }
}

/// One combination of a variant and a load value.
#[derive(Debug, Clone)]
pub struct CellSpec {
    /// The cell's position in the run, from 1.
    pub index: usize,
    /// Index into [`Plan::variants`].
    pub variant: usize,
    /// The load to apply; with stages, the peak workers and the mean planned rate.
    pub load: LoadPoint,
    /// Staged load, when the scenario has `load.stages`.
    pub stages: Option<Arc<Stages>>,
}

/// Everything a run needs, checked and compiled.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario as read, after overrides and environment expansion.
    pub scenario: Scenario,
    /// The scenario file.
    pub path: PathBuf,
    /// The compiled variants.
    pub variants: Vec<CompiledVariant>,
    /// The data rows, when the scenario has a `[data]` table.
    pub data: Option<DataSet>,
    /// How workers walk through the data rows.
    pub row_order: RowOrder,
    /// Seed for random row order and `random_int`.
    pub seed: u64,
    /// The cells in the order they run.
    pub cells: Vec<CellSpec>,
}

impl Plan {
    /// Checks a loaded scenario and compiles it; every problem found is reported at once.
    pub fn build(loaded: &LoadedScenario) -> Result<Plan, ScenarioError> {
        let mut problems = Problems::new(loaded);
        let scenario = &loaded.scenario;
        check_target(scenario, &mut problems);
        check_auth(scenario, &mut problems);
        let data = load_data(scenario, &loaded.path, &mut problems);
        let columns = data.as_ref().map(DataSet::columns);
        let mut variants = compile_variants(scenario, columns, &mut problems);
        check_thresholds(scenario, &mut variants, &mut problems);
        let cells = plan_cells(scenario, variants.len(), &mut problems);
        problems.finish()?;
        Ok(Plan {
            scenario: scenario.clone(),
            path: loaded.path.clone(),
            variants,
            data,
            row_order: scenario
                .data
                .as_ref()
                .map(|data| data.order)
                .unwrap_or_default(),
            seed: scenario.data.as_ref().map_or(0, |data| data.seed),
            cells,
        })
    }
}

/// Collects problems, each with the line of the key it concerns.
struct Problems<'a> {
    loaded: &'a LoadedScenario,
    document: Option<toml_edit::Document<String>>,
    list: Vec<String>,
}

impl<'a> Problems<'a> {
    fn new(loaded: &'a LoadedScenario) -> Problems<'a> {
        Problems {
            loaded,
            document: toml_edit::Document::parse(loaded.text.clone()).ok(),
            list: Vec::new(),
        }
    }

    /// Records a problem with the key at `key_path` (dotted, numbers index arrays of tables).
    fn add(&mut self, key_path: &str, message: String) {
        let at = self.locate(key_path).unwrap_or_default();
        self.list.push(format!(
            "{}{at}: {key_path}: {message}",
            self.loaded.path.display()
        ));
    }

    fn locate(&self, key_path: &str) -> Option<String> {
        let document = self.document.as_ref()?;
        let mut item = document.as_item();
        let mut span = None;
        for part in key_path.split('.') {
            item = match (item, part.parse::<usize>()) {
                (toml_edit::Item::ArrayOfTables(array), Ok(index)) => {
                    let table = array.get(index)?;
                    span = table.span().or(span);
                    return table
                        .get(key_path.rsplit('.').next()?)
                        .and_then(|value| value.span())
                        .or(span)
                        .map(|span| location(&self.loaded.text, span.start));
                }
                (item, _) => item.get(part)?,
            };
            span = item.span().or(span);
        }
        span.map(|span| location(&self.loaded.text, span.start))
    }

    fn finish(self) -> Result<(), ScenarioError> {
        if self.list.is_empty() {
            return Ok(());
        }
        Err(ScenarioError::Invalid {
            path: self.loaded.path.clone(),
            problems: self.list,
        })
    }
}

fn check_target(scenario: &Scenario, problems: &mut Problems<'_>) {
    let url = scenario.target.url.as_str();
    if url == "embedded" {
        return;
    }
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            if uri.path_and_query().is_some_and(|path| path.as_str() != "/" && !path.as_str().is_empty()) {
                problems.add(
                    "target.url",
                    format!("\"{url}\" has a path; put only scheme and host in target.url and the path in request.path"),
                );
            }
        }
        _ => problems.add(
            "target.url",
            format!("invalid URL \"{url}\": write \"embedded\" or a base URL such as \"https://api.mypurecloud.com\""),
        ),
    }
}

fn check_auth(scenario: &Scenario, problems: &mut Problems<'_>) {
    match &scenario.auth {
        Auth::OAuth2ClientCredentials {
            token_url,
            client_id,
            ..
        } => {
            // The target is not known yet for `embedded`, so a placeholder base URL replaces it.
            let url = token_url.replace("{target}", "http://127.0.0.1");
            let valid = url.parse::<http::Uri>().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if !valid {
                problems.add(
                    "auth.token_url",
                    format!("invalid URL \"{token_url}\": write \"{{target}}/oauth/token\" or a full URL such as \"https://login.mypurecloud.com/oauth/token\""),
                );
            }
            if client_id.trim().is_empty() {
                problems.add("auth.client_id", "the client id is empty".into());
            }
        }
        Auth::Header { name, .. } if HeaderName::from_bytes(name.as_bytes()).is_err() => {
            problems.add("auth.name", format!("invalid header name \"{name}\""));
        }
        _ => {}
    }
}

fn load_data(scenario: &Scenario, path: &Path, problems: &mut Problems<'_>) -> Option<DataSet> {
    let spec = scenario.data.as_ref()?;
    let file = path.parent().unwrap_or(Path::new(".")).join(&spec.file);
    match DataSet::load(&file) {
        Ok(data) => Some(data),
        Err(error) => {
            problems.add("data.file", error.to_string());
            None
        }
    }
}

fn compile_variants(
    scenario: &Scenario,
    columns: Option<&[String]>,
    problems: &mut Problems<'_>,
) -> Vec<CompiledVariant> {
    let base = &scenario.request;
    let method = Method::from_bytes(base.method.as_bytes()).unwrap_or_else(|_| {
        problems.add(
            "request.method",
            format!(
                "invalid method \"{}\": write an HTTP method such as POST",
                base.method
            ),
        );
        Method::POST
    });
    if scenario.variants.is_empty() {
        let default = Variant {
            name: "default".to_string(),
            body: None,
            headers: Default::default(),
            path: None,
            thresholds: Default::default(),
        };
        return vec![compile_variant(
            scenario, &default, "request", &method, columns, problems,
        )];
    }
    let mut variants: Vec<CompiledVariant> = Vec::new();
    for (index, variant) in scenario.variants.iter().enumerate() {
        let key = format!("variant.{index}");
        if variant.name.trim().is_empty() {
            problems.add(
                &format!("{key}.name"),
                "the name is empty; give each variant a name".into(),
            );
        }
        if variants.iter().any(|other| other.name == variant.name) {
            problems.add(
                &format!("{key}.name"),
                format!(
                    "the name \"{}\" is used twice; names must be unique",
                    variant.name
                ),
            );
        }
        variants.push(compile_variant(
            scenario, variant, &key, &method, columns, problems,
        ));
    }
    variants
}

fn compile_variant(
    scenario: &Scenario,
    variant: &Variant,
    key: &str,
    method: &Method,
    columns: Option<&[String]>,
    problems: &mut Problems<'_>,
) -> CompiledVariant {
    let base = &scenario.request;
    let (path_text, path_key) = match &variant.path {
        Some(path) => (path.as_str(), format!("{key}.path")),
        None => (base.path.as_str(), "request.path".to_string()),
    };
    let (body_text, body_key) = match &variant.body {
        Some(body) => (body.as_str(), format!("{key}.body")),
        None => (base.body.as_str(), "request.body".to_string()),
    };
    if !path_text.starts_with('/') {
        problems.add(&path_key, format!("\"{path_text}\" must start with /"));
    }
    let path = compile_template(scenario, path_text, &path_key, columns, problems);
    if path
        .as_constant()
        .is_some_and(|text| text.parse::<http::Uri>().is_err())
    {
        problems.add(
            &path_key,
            format!("\"{path_text}\" is not a valid URI path; percent-encode spaces and other reserved characters"),
        );
    }
    let body = compile_template(scenario, body_text, &body_key, columns, problems);

    let mut header_specs: Vec<(&String, &String, String)> = base
        .headers
        .iter()
        .map(|(name, value)| (name, value, format!("request.headers.{name}")))
        .collect();
    for (name, value) in &variant.headers {
        header_specs.retain(|(existing, _, _)| !existing.eq_ignore_ascii_case(name));
        header_specs.push((name, value, format!("{key}.headers.{name}")));
    }
    let mut headers = Vec::new();
    for (name, value, header_key) in header_specs {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.add(&header_key, format!("invalid header name \"{name}\""));
            continue;
        };
        let template = compile_template(scenario, value, &header_key, columns, problems);
        if template
            .as_constant()
            .is_some_and(|text| HeaderValue::from_str(text).is_err())
        {
            problems.add(
                &header_key,
                "the value has characters a header cannot carry".into(),
            );
        }
        headers.push((header, template));
    }
    CompiledVariant {
        name: variant.name.clone(),
        method: method.clone(),
        path,
        headers,
        body,
        thresholds: Vec::new(),
    }
}

fn compile_template(
    scenario: &Scenario,
    text: &str,
    key: &str,
    columns: Option<&[String]>,
    problems: &mut Problems<'_>,
) -> Template {
    Template::compile(text, &scenario.vars, columns).unwrap_or_else(|error| {
        // When the data file failed to load, its own error already explains the columns.
        let data_failed = scenario.data.is_some() && columns.is_none();
        if !(data_failed && matches!(error, crate::template::TemplateError::UnknownColumn { .. })) {
            problems.add(key, error.to_string());
        }
        Template::compile("", &Default::default(), None).expect("an empty template compiles")
    })
}

fn plan_cells(
    scenario: &Scenario,
    variant_count: usize,
    problems: &mut Problems<'_>,
) -> Vec<CellSpec> {
    let load = &scenario.load;
    if load.timeout.0.is_zero() {
        problems.add(
            "load.timeout",
            "must be longer than 0s, such as \"30s\"".into(),
        );
    }
    if let Some(specs) = &load.stages {
        return plan_staged_cells(scenario, specs, variant_count, problems);
    }
    let points = match load.model {
        Model::Closed => closed_points(scenario, problems),
        Model::Open => open_points(scenario, problems),
    };
    match (load.duration, load.iterations) {
        (None, None) => problems.add(
            "load",
            "missing duration or iterations: add duration = \"20s\" or iterations = 1000".into(),
        ),
        (Some(duration), _) if duration.0.is_zero() => problems.add(
            "load.duration",
            "must be longer than 0s, such as \"20s\"".into(),
        ),
        (_, Some(0)) => problems.add("load.iterations", "must be at least 1".into()),
        _ => {}
    }
    let mut cells = Vec::new();
    for variant in 0..variant_count {
        for point in &points {
            cells.push(CellSpec {
                index: cells.len() + 1,
                variant,
                load: *point,
                stages: None,
            });
        }
    }
    cells
}

fn plan_staged_cells(
    scenario: &Scenario,
    specs: &[StageSpec],
    variant_count: usize,
    problems: &mut Problems<'_>,
) -> Vec<CellSpec> {
    let load = &scenario.load;
    let conflicts = [
        ("load.duration", load.duration.is_some()),
        ("load.concurrency", load.concurrency.is_some()),
        ("load.rate", load.rate.is_some()),
        ("load.ramp_up", !load.ramp_up.0.is_zero()),
    ];
    for (key, set) in conflicts {
        if set {
            problems.add(
                key,
                "stages set the load and the duration of each cell; remove this key or the stages"
                    .into(),
            );
        }
    }
    let stages = match Stages::new(specs) {
        Ok(stages) => Arc::new(stages),
        Err(problem) => {
            problems.add("load.stages", problem);
            return Vec::new();
        }
    };
    let point = match load.model {
        Model::Closed => {
            let peak = stages.peak().ceil();
            if peak < 1.0 || peak > f64::from(MAX_WORKERS) {
                problems.add(
                    "load.stages",
                    format!("the highest target must be 1 to {MAX_WORKERS} workers"),
                );
            }
            LoadPoint::Closed {
                concurrency: peak.clamp(1.0, f64::from(MAX_WORKERS)) as u32,
            }
        }
        Model::Open => {
            let max_in_flight = load.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
            if max_in_flight == 0 || max_in_flight > MAX_WORKERS {
                problems.add(
                    "load.max_in_flight",
                    format!("invalid max_in_flight {max_in_flight}: use 1 to {MAX_WORKERS}"),
                );
            }
            if stages.planned_requests() < 1.0 {
                problems.add(
                    "load.stages",
                    "the stages plan no request; raise a target above 0".into(),
                );
            }
            let mean = stages.planned_requests() / stages.duration().as_secs_f64();
            LoadPoint::Open {
                rate: mean,
                max_in_flight,
            }
        }
    };
    (0..variant_count)
        .map(|variant| CellSpec {
            index: variant + 1,
            variant,
            load: point,
            stages: Some(Arc::clone(&stages)),
        })
        .collect()
}

fn closed_points(scenario: &Scenario, problems: &mut Problems<'_>) -> Vec<LoadPoint> {
    let Some(concurrency) = &scenario.load.concurrency else {
        problems.add("load", "missing concurrency for the closed model: add concurrency = [1, 8] or set model = \"open\" with a rate".into());
        return Vec::new();
    };
    let values = concurrency.to_vec();
    if values.is_empty() {
        problems.add(
            "load.concurrency",
            "the list is empty; give at least one worker count".into(),
        );
    }
    for value in &values {
        if *value == 0 || *value > MAX_WORKERS {
            problems.add(
                "load.concurrency",
                format!("invalid concurrency {value}: use 1 to {MAX_WORKERS}"),
            );
        }
    }
    if let Some(duration) = scenario.load.duration
        && scenario.load.ramp_up.0 >= duration.0
    {
        problems.add(
            "load.ramp_up",
            format!(
                "ramp_up {} is not shorter than duration {}, so some workers would never send; shorten it",
                scenario.load.ramp_up, duration
            ),
        );
    }
    values
        .into_iter()
        .map(|concurrency| LoadPoint::Closed { concurrency })
        .collect()
}

fn open_points(scenario: &Scenario, problems: &mut Problems<'_>) -> Vec<LoadPoint> {
    let load = &scenario.load;
    let Some(rate) = &load.rate else {
        problems.add(
            "load",
            "missing rate for the open model: add rate = [50, 100] (requests per second)".into(),
        );
        return Vec::new();
    };
    if load.throttle.is_some() {
        problems.add("load.throttle", "throttle caps the closed model; the open model's rate already sets the pace, so remove throttle".into());
    }
    let max_in_flight = load.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 || max_in_flight > MAX_WORKERS {
        problems.add(
            "load.max_in_flight",
            format!("invalid max_in_flight {max_in_flight}: use 1 to {MAX_WORKERS}"),
        );
    }
    let values = rate.to_vec();
    if values.is_empty() {
        problems.add(
            "load.rate",
            "the list is empty; give at least one rate".into(),
        );
    }
    for value in &values {
        if !value.is_finite() || *value <= 0.0 {
            problems.add(
                "load.rate",
                format!("invalid rate {value}: use a number of requests per second above 0"),
            );
        }
    }
    values
        .into_iter()
        .map(|rate| LoadPoint::Open {
            rate,
            max_in_flight,
        })
        .collect()
}

fn check_thresholds(
    scenario: &Scenario,
    variants: &mut [CompiledVariant],
    problems: &mut Problems<'_>,
) {
    let shared = thresholds::parse_table(&scenario.thresholds).unwrap_or_else(|failed| {
        for (metric, message) in failed {
            problems.add(&format!("thresholds.{metric}"), message);
        }
        Vec::new()
    });
    for (index, variant) in variants.iter_mut().enumerate() {
        let own = match scenario.variants.get(index) {
            Some(spec) => thresholds::parse_table(&spec.thresholds).unwrap_or_else(|failed| {
                for (metric, message) in failed {
                    problems.add(&format!("variant.{index}.thresholds.{metric}"), message);
                }
                Vec::new()
            }),
            None => Vec::new(),
        };
        variant.thresholds = thresholds::effective(&shared, &own);
    }
}
