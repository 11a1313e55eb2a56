//! SVG chart of a forecast: history, forecast, shaded 80% and 95% intervals, holidays marked.

use chrono::{Duration, NaiveDate};
use plotters::prelude::*;

use crate::daily::{ForecastResult, Frequency};

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The result has no history and no forecast.
    #[error("nothing to draw")]
    Empty,
    /// The drawing backend failed.
    #[error("drawing the chart: {0}")]
    Draw(String),
}

fn draw_error<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// History days drawn before the forecast: enough to see the weekly pattern and the last
/// holidays without squeezing the forecast.
const HISTORY_DAYS: usize = 90;

/// Draws `result` as an SVG document of `width`×`height` pixels. The history line is
/// `id`-free grey-blue, the forecast orange; holidays in the drawn range are red bands.
pub fn render_svg(
    result: &ForecastResult,
    title: &str,
    width: u32,
    height: u32,
) -> Result<String, ChartError> {
    let history = &result.history[result.history.len().saturating_sub(HISTORY_DAYS)..];
    let first = history
        .first()
        .map(|d| d.date)
        .or_else(|| result.points.first().map(|p| p.date))
        .ok_or(ChartError::Empty)?;
    let last = result
        .points
        .last()
        .map(|p| p.date)
        .or_else(|| history.last().map(|d| d.date))
        .ok_or(ChartError::Empty)?;
    let x = |date: NaiveDate| (date - first).num_days() as f64;
    let x_max = x(last).max(1.0);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in history
        .iter()
        .map(|d| d.value)
        .chain(result.points.iter().flat_map(|p| [p.lo95, p.hi95, p.value]))
    {
        y_min = y_min.min(v);
        y_max = y_max.max(v);
    }
    if !(y_min.is_finite() && y_max.is_finite()) {
        return Err(ChartError::Empty);
    }
    let pad = ((y_max - y_min) * 0.05).max(1.0);
    let (y_min, y_max) = (y_min - pad, y_max + pad);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, y_min..y_max)
            .map_err(draw_error)?;
        let date_format = match result.frequency {
            Frequency::Daily => "%m-%d",
            Frequency::Monthly => "%Y-%m",
        };
        let label = |v: &f64| {
            (first + Duration::days(v.round() as i64))
                .format(date_format)
                .to_string()
        };
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&label)
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_error)?;

        let holiday_color = RGBColor(220, 60, 60);
        let days_off = result
            .history
            .iter()
            .map(|d| d.date)
            .chain(result.points.iter().map(|p| p.date))
            .filter(|d| *d >= first && *d <= last);
        let marked: Vec<NaiveDate> = days_off
            .filter(|d| {
                result
                    .holidays
                    .iter()
                    .any(|e| e.category == "holiday" && e.first <= *d && *d <= e.last)
            })
            .collect();
        chart
            .draw_series(marked.iter().map(|d| {
                let left = x(*d) - 0.5;
                Rectangle::new(
                    [(left, y_min), (left + 1.0, y_max)],
                    holiday_color.mix(0.12).filled(),
                )
            }))
            .map_err(draw_error)?;

        let band = |lo: fn(&crate::daily::ForecastPoint) -> f64,
                    hi: fn(&crate::daily::ForecastPoint) -> f64| {
            let upper = result.points.iter().map(move |p| (x(p.date), hi(p)));
            let lower = result.points.iter().rev().map(move |p| (x(p.date), lo(p)));
            upper.chain(lower).collect::<Vec<(f64, f64)>>()
        };
        let forecast_color = RGBColor(230, 120, 20);
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(|p| p.lo95, |p| p.hi95),
                forecast_color.mix(0.15),
            )))
            .map_err(draw_error)?
            .label("95%")
            .legend(move |(x, y)| {
                Rectangle::new(
                    [(x, y - 4), (x + 14, y + 4)],
                    forecast_color.mix(0.15).filled(),
                )
            });
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(|p| p.lo80, |p| p.hi80),
                forecast_color.mix(0.3),
            )))
            .map_err(draw_error)?
            .label("80%")
            .legend(move |(x, y)| {
                Rectangle::new(
                    [(x, y - 4), (x + 14, y + 4)],
                    forecast_color.mix(0.3).filled(),
                )
            });
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|d| (x(d.date), d.value)),
                RGBColor(50, 90, 160).stroke_width(2),
            ))
            .map_err(draw_error)?
            .label("history")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], RGBColor(50, 90, 160)));
        chart
            .draw_series(LineSeries::new(
                result.points.iter().map(|p| (x(p.date), p.value)),
                forecast_color.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label(format!("forecast ({})", result.model.name()))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], forecast_color));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(draw_error)?;
        for event in result
            .holidays
            .iter()
            .filter(|e| e.first >= first && e.first <= last)
        {
            chart
                .draw_series(std::iter::once(Text::new(
                    event.name.clone(),
                    (x(event.first), y_max - pad * 0.5),
                    ("sans-serif", 11).into_font().color(&holiday_color),
                )))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daily::{DailyValue, ForecastOptions, forecast_daily};
    use crate::holidays::HolidayCalendar;

    #[test]
    fn svg_is_well_formed_and_holds_the_forecast() {
        let calendar = HolidayCalendar::china().unwrap();
        let start = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let history: Vec<DailyValue> = (0..92)
            .map(|t| DailyValue {
                date: start + Duration::days(t),
                value: 100.0 + (t % 7) as f64 * 5.0 + t as f64 * 0.3,
            })
            .collect();
        let result = forecast_daily(&history, &calendar, &ForecastOptions::default()).unwrap();
        // The horizon (1–14 October) holds the National Day week.
        let svg = render_svg(&result, "新增关注 <daily> & forecast", 800, 400).unwrap();
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut elements = 0;
        let mut polylines = 0;
        let mut texts = String::new();
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                    elements += 1;
                    if AsRef::<str>::as_ref(&e.name()) == "polyline" {
                        polylines += 1;
                    }
                }
                Ok(quick_xml::events::Event::Text(t)) => {
                    texts.push_str(AsRef::<str>::as_ref(&t));
                }
                Ok(_) => {}
                Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
            }
        }
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        assert!(elements > 20);
        // History line and forecast line.
        assert!(polylines >= 2, "{polylines} polylines");
        let legend = format!("forecast ({})", result.model.name());
        assert!(texts.contains(&legend), "legend {legend:?} missing");
        assert!(texts.contains("国庆节"), "holiday label missing");
        // The forecast line: the longest polyline in the forecast colour (the legend's sample
        // is a short one) has one vertex per forecast day.
        let vertices = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| p.contains("#E67814"))
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .map(|points| points.split_whitespace().count())
            .max();
        assert_eq!(vertices, Some(result.points.len()));
    }
}
