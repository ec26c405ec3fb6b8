//! The page's charts, drawn as inline SVG with plotters' SVG backend. Chart text is fixed
//! (axis names, series names), so no scenario text reaches the SVG.

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::SecondLine;

/// Width and height of each chart, in CSS pixels.
pub const SIZE: (u32, u32) = (420, 280);

/// The maximum number of bars in an outcome chart; longer cells add adjacent seconds together.
const MAX_BARS: usize = 300;

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const GREY: RGBColor = RGBColor(127, 127, 127);

/// A drawn chart: its SVG and the legend the page shows under it.
pub struct Chart {
    /// The SVG element.
    pub svg: String,
    /// One key per series, in drawing order.
    pub legend: Vec<Key>,
}

/// A legend entry: a series name and how the series is drawn.
pub struct Key {
    pub name: &'static str,
    pub color: RGBColor,
    /// Drawn pale.
    pub faint: bool,
    /// Drawn as filled bars rather than a line.
    pub filled: bool,
}

impl Key {
    /// Returns the CSS color of the key, pale when the series is.
    pub fn css_color(&self) -> String {
        let RGBColor(red, green, blue) = self.color;
        let alpha = if self.faint { 0.45 } else { 1.0 };
        format!("rgba({red},{green},{blue},{alpha})")
    }
}

fn line_keys(lines: &[Line]) -> Vec<Key> {
    lines
        .iter()
        .filter(|line| !line.points.is_empty())
        .map(|line| Key {
            name: line.name,
            color: line.color,
            faint: line.faint,
            filled: false,
        })
        .collect()
}

/// One line of a chart: a name, its color and its `(x, ms)` points.
pub struct Line {
    pub name: &'static str,
    pub color: RGBColor,
    /// Drawn thin and pale, for the open model's uncorrected latency.
    pub faint: bool,
    pub points: Vec<(f64, f64)>,
}

/// The shortest interval the latency lines show, in seconds. The tail of a cell after its
/// send window often lasts a few milliseconds with a handful of responses, so its percentiles
/// would draw a misleading spike. Its requests still count in the bars, the distribution and
/// summary.csv.
pub const MIN_LINE_INTERVAL_S: f64 = 0.1;

/// Returns the latency lines of a cell's seconds: p50, p90, p99 and max, skipping seconds
/// without a response and intervals shorter than [`MIN_LINE_INTERVAL_S`].
pub fn latency_lines(seconds: &[&SecondLine]) -> Vec<Line> {
    let mut with_latency: Vec<&SecondLine> = Vec::new();
    let mut previous_end = 0.0;
    for second in seconds {
        let length = second.elapsed_s - previous_end;
        previous_end = second.elapsed_s;
        let responses = second.ok + second.forbidden + second.throttled + second.other_errors();
        if responses > 0 && length >= MIN_LINE_INTERVAL_S {
            with_latency.push(second);
        }
    }
    let line = |name, color, value: fn(&SecondLine) -> f64| Line {
        name,
        color,
        faint: false,
        points: with_latency
            .iter()
            .map(|second| (second.elapsed_s, value(second)))
            .collect(),
    };
    vec![
        line("p50", BLUE_, |second| second.p50_ms),
        line("p90", GREEN_, |second| second.p90_ms),
        line("p99", ORANGE, |second| second.p99_ms),
        line("max", RED_, |second| second.max_ms),
    ]
}

/// Returns the uncorrected p50 and p99 lines of an open cell from its hlog intervals, given
/// as `(seconds since the cell started at the interval's end, histogram)`.
pub fn uncorrected_lines(intervals: &[(f64, &Histogram<u64>)]) -> Vec<Line> {
    let line = |name, color, quantile: f64| Line {
        name,
        color,
        faint: true,
        points: intervals
            .iter()
            .filter(|(_, histogram)| !histogram.is_empty())
            .map(|(end, histogram)| (*end, histogram.value_at_quantile(quantile) as f64 / 1000.0))
            .collect(),
    };
    vec![
        line("p50 uncorrected", BLUE_, 0.5),
        line("p99 uncorrected", ORANGE, 0.99),
    ]
}

/// Draws latency percentiles over time.
pub fn latency_over_time(lines: &[Line]) -> Result<Chart, String> {
    let x_max = axis_max(
        lines
            .iter()
            .flat_map(|line| line.points.iter().map(|p| p.0)),
    );
    let y_max = axis_max(
        lines
            .iter()
            .flat_map(|line| line.points.iter().map(|p| p.1)),
    );
    let svg = draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Latency over time", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since the cell started")
            .y_desc("ms")
            .x_label_formatter(&|x| axis_number(*x))
            .y_label_formatter(&|y| axis_number(*y))
            .max_light_lines(0)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(|error| error.to_string())?;
        for line in lines.iter().filter(|line| !line.points.is_empty()) {
            let style = if line.faint {
                line.color.mix(0.45).stroke_width(1)
            } else {
                line.color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    })?;
    Ok(Chart {
        svg,
        legend: line_keys(lines),
    })
}

/// One stacked bar: its time span in seconds and requests per second of each kind.
struct Bar {
    from: f64,
    to: f64,
    rates: [f64; 5],
}

const KINDS: [(&str, RGBColor); 5] = [
    ("ok", GREEN_),
    ("403", ORANGE),
    ("429", RED_),
    ("other errors", PURPLE),
    ("dropped", GREY),
];

fn bars(seconds: &[&SecondLine]) -> Vec<Bar> {
    let group = seconds.len().div_ceil(MAX_BARS).max(1);
    let mut bars = Vec::new();
    let mut from = 0.0;
    for chunk in seconds.chunks(group) {
        let to = chunk.last().map_or(from, |second| second.elapsed_s);
        let mut counts = [0u64; 5];
        for second in chunk {
            counts[0] += second.ok;
            counts[1] += second.forbidden;
            counts[2] += second.throttled;
            counts[3] += second.other_errors();
            counts[4] += second.dropped;
        }
        // A short last interval still shows a rate, not its smaller count.
        let width = (to - from).max(0.05);
        bars.push(Bar {
            from,
            to,
            rates: counts.map(|count| count as f64 / width),
        });
        from = to;
    }
    bars
}

/// Draws the outcomes of each second as stacked bars of requests per second.
pub fn outcomes_per_second(seconds: &[&SecondLine]) -> Result<Chart, String> {
    let bars = bars(seconds);
    let x_max = axis_max(bars.iter().map(|bar| bar.to));
    let y_max = axis_max(bars.iter().map(|bar| bar.rates.iter().sum()));
    let svg = draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Outcomes per second", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since the cell started")
            .y_desc("requests per second")
            .x_label_formatter(&|x| axis_number(*x))
            .y_label_formatter(&|y| axis_number(*y))
            .max_light_lines(0)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(|error| error.to_string())?;
        for (kind, (_, color)) in KINDS.iter().enumerate() {
            let rectangles = bars.iter().filter(|bar| bar.rates[kind] > 0.0).map(|bar| {
                let below: f64 = bar.rates[..kind].iter().sum();
                Rectangle::new(
                    [(bar.from, below), (bar.to, below + bar.rates[kind])],
                    color.filled(),
                )
            });
            chart
                .draw_series(rectangles)
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    })?;
    Ok(Chart {
        svg,
        legend: KINDS
            .iter()
            .map(|(name, color)| Key {
                name,
                color: *color,
                faint: false,
                filled: true,
            })
            .collect(),
    })
}

/// Draws latency by percentile, with the percentile axis stretched toward 100% as
/// HdrHistogram's plots do: x is 1 / (1 - quantile) on a log scale.
pub fn percentile_distribution(
    series: &[(&'static str, &Histogram<u64>)],
) -> Result<Chart, String> {
    let lines: Vec<Line> = series
        .iter()
        .enumerate()
        .filter(|(_, (_, histogram))| !histogram.is_empty())
        .map(|(index, (name, histogram))| Line {
            name,
            color: if index == 0 { BLUE_ } else { ORANGE },
            faint: index > 0,
            points: distribution_points(histogram),
        })
        .collect();
    let x_max = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|point| point.0))
        .fold(10.0, f64::max);
    // Whole nines, so the axis ends on a labelled percentile.
    let x_max = 10f64.powf(x_max.log10().ceil());
    let y_max = axis_max(
        lines
            .iter()
            .flat_map(|line| line.points.iter().map(|point| point.1)),
    );
    let svg = draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Latency by percentile", ("sans-serif", 16))
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| axis_number(*y))
            .max_light_lines(0)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(|error| error.to_string())?;
        for line in &lines {
            let style = if line.faint {
                line.color.mix(0.6).stroke_width(2)
            } else {
                line.color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    })?;
    Ok(Chart {
        svg,
        legend: line_keys(&lines),
    })
}

/// Returns `(1 / (1 - quantile), ms)` points of a histogram, five per halving of the
/// remaining distance to 100%, ending at its maximum.
fn distribution_points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    // Percentiles beyond 1 / count add no information, so the axis stops there.
    let x_end = (histogram.len() as f64).max(10.0);
    let mut points: Vec<(f64, f64)> = histogram
        .iter_quantiles(5)
        .map(|value| {
            let quantile = value.quantile_iterated_to();
            let x = if quantile < 1.0 {
                (1.0 / (1.0 - quantile)).min(x_end)
            } else {
                x_end
            };
            (
                x,
                histogram.highest_equivalent(value.value_iterated_to()) as f64 / 1000.0,
            )
        })
        .collect();
    points.push((x_end, histogram.max() as f64 / 1000.0));
    points
}

/// Formats an axis position `1 / (1 - quantile)` as a percentile: 1 -> `0%`, 10 -> `90%`,
/// 1000 -> `99.9%`.
fn percentile_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Formats an axis label with at most two decimals and no trailing zeros.
fn axis_number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Returns an axis end a little above the largest value, at least 1.
fn axis_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|value| value.is_finite()).fold(0.0, f64::max);
    if max > 0.0 { max * 1.08 } else { 1.0 }
}

/// Runs `paint` on a white SVG canvas and returns the SVG text.
fn draw(
    paint: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        paint(&root)?;
        root.present().map_err(|error| error.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(2.0), "50%");
    }

    #[test]
    fn long_cells_group_seconds_into_bars() {
        let second = |elapsed_s: f64| SecondLine {
            cell: 1,
            elapsed_s,
            ok: 10,
            forbidden: 0,
            throttled: 5,
            client_error: 0,
            server_error: 0,
            timeout: 0,
            connect_error: 0,
            other_error: 0,
            cancelled: 0,
            dropped: 0,
            p50_ms: 1.0,
            p90_ms: 1.0,
            p99_ms: 1.0,
            max_ms: 1.0,
        };
        let seconds: Vec<SecondLine> = (1..=1000).map(|index| second(index as f64)).collect();
        let references: Vec<&SecondLine> = seconds.iter().collect();
        let bars = bars(&references);
        assert!(bars.len() <= MAX_BARS, "{} bars", bars.len());
        assert_eq!(bars[0].from, 0.0);
        assert_eq!(
            bars[0].rates[0], 10.0,
            "grouped bars keep the rate per second"
        );
        assert_eq!(bars[0].rates[2], 5.0);
        assert_eq!(bars.last().unwrap().to, 1000.0);
    }
}
