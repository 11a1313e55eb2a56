//! China's public holidays, make-up working days and marketing dates, from the data file
//! `forecast/data/holidays-cn.toml`. Years past the file's last published year are computed
//! from its lunar table and marked estimated.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The data file, compiled in so a deployment needs no extra file.
pub const CHINA_HOLIDAYS_TOML: &str = include_str!("../data/holidays-cn.toml");

/// Why the holiday file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HolidayError {
    /// Not valid TOML or not the expected shape.
    #[error("holiday file: {0}")]
    Syntax(String),
    /// A date or rule in the file is wrong.
    #[error("holiday file, {context}: {reason}")]
    Invalid {
        /// Where in the file.
        context: String,
        /// What is wrong.
        reason: String,
    },
}

/// A public holiday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolidayKind {
    /// 元旦.
    NewYear,
    /// 春节.
    SpringFestival,
    /// 清明节.
    Qingming,
    /// 劳动节.
    LabourDay,
    /// 端午节.
    DragonBoat,
    /// 中秋节.
    MidAutumn,
    /// 国庆节.
    NationalDay,
}

/// A marketing date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketingKind {
    /// 20 May (520, "I love you").
    #[serde(rename = "day_520")]
    Day520,
    /// 18 June (618 shopping festival).
    #[serde(rename = "day_618")]
    Day618,
    /// Qixi, the 7th day of the 7th lunar month.
    Qixi,
    /// 11 November (双11).
    #[serde(rename = "double_11")]
    Double11,
    /// 12 December (双12).
    #[serde(rename = "double_12")]
    Double12,
    /// The shopping run-up to the Spring Festival (年货节).
    SpringFestivalRunup,
}

/// A block of days off for one holiday, with its make-up working days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    /// Which holiday.
    pub kind: HolidayKind,
    /// Its name as announced.
    pub name: String,
    /// First day off.
    pub first: NaiveDate,
    /// Last day off.
    pub last: NaiveDate,
    /// Weekend days that are working days in exchange (调休).
    pub makeup: Vec<NaiveDate>,
    /// Computed from the lunar table, not yet announced.
    pub estimated: bool,
}

/// One occurrence of a marketing date (one day, or a run of days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketingEvent {
    /// Which event.
    pub kind: MarketingKind,
    /// Display name.
    pub name: String,
    /// First day.
    pub first: NaiveDate,
    /// Last day.
    pub last: NaiveDate,
}

/// A holiday or marketing event that touches a date range, as reported with a forecast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    /// `holiday` or `marketing`.
    pub category: String,
    /// snake_case kind (`spring_festival`, `double_11`, …).
    pub kind: String,
    /// Display name.
    pub name: String,
    /// First day.
    pub first: NaiveDate,
    /// Last day.
    pub last: NaiveDate,
    /// Make-up working days (holidays only).
    pub makeup: Vec<NaiveDate>,
    /// Whether the dates are computed rather than announced.
    pub estimated: bool,
}

#[derive(Deserialize)]
struct FileRoot {
    #[serde(default)]
    year: Vec<FileYear>,
    #[serde(default)]
    lunar: Vec<FileLunar>,
    #[serde(default)]
    marketing: Vec<FileMarketing>,
}

#[derive(Deserialize)]
struct FileYear {
    year: i32,
    holidays: Vec<FileHoliday>,
}

#[derive(Deserialize)]
struct FileHoliday {
    kind: HolidayKind,
    name: String,
    off: [String; 2],
    #[serde(default)]
    makeup: Vec<String>,
}

#[derive(Deserialize)]
struct FileLunar {
    year: i32,
    new_year: String,
    dragon_boat: String,
    qixi: String,
    mid_autumn: String,
}

#[derive(Deserialize)]
struct FileMarketing {
    kind: MarketingKind,
    name: String,
    date: Option<String>,
    lunar: Option<String>,
    before_new_year: Option<u32>,
}

/// Gregorian dates of the lunar festivals in one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LunarYear {
    new_year: NaiveDate,
    dragon_boat: NaiveDate,
    qixi: NaiveDate,
    mid_autumn: NaiveDate,
}

/// How a marketing event's dates are found each year.
#[derive(Debug, Clone)]
enum MarketingRule {
    Fixed { month: u32, day: u32 },
    Qixi,
    BeforeNewYear(u32),
}

/// Holidays, make-up days and marketing events, looked up by date.
#[derive(Debug, Clone)]
pub struct HolidayCalendar {
    holidays: Vec<Holiday>,
    marketing: Vec<MarketingEvent>,
    /// Day off → (holiday index, day number within the block).
    off_days: BTreeMap<NaiveDate, (usize, usize)>,
    makeup_days: BTreeSet<NaiveDate>,
    /// Years announced in the file.
    published: BTreeSet<i32>,
    /// Years the lunar table covers.
    covered: BTreeSet<i32>,
}

fn parse_date(text: &str, context: &str) -> Result<NaiveDate, HolidayError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| HolidayError::Invalid {
        context: context.to_owned(),
        reason: format!("{text:?}: {e}"),
    })
}

impl HolidayCalendar {
    /// The compiled-in calendar of China.
    pub fn china() -> Result<Self, HolidayError> {
        Self::parse(CHINA_HOLIDAYS_TOML)
    }

    /// Parses a holiday file (the format of `forecast/data/holidays-cn.toml`).
    pub fn parse(text: &str) -> Result<Self, HolidayError> {
        let root: FileRoot =
            toml::from_str(text).map_err(|e| HolidayError::Syntax(e.to_string()))?;
        let mut holidays = Vec::new();
        let mut published = BTreeSet::new();
        for year in &root.year {
            published.insert(year.year);
            for h in &year.holidays {
                let context = format!("{} {}", year.year, h.name);
                let first = parse_date(&h.off[0], &context)?;
                let last = parse_date(&h.off[1], &context)?;
                if last < first || (last - first).num_days() > 14 {
                    return Err(HolidayError::Invalid {
                        context,
                        reason: "off must be [first, last] within two weeks".to_owned(),
                    });
                }
                let makeup = h
                    .makeup
                    .iter()
                    .map(|d| parse_date(d, &context))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(day) = makeup.iter().find(|d| **d >= first && **d <= last) {
                    return Err(HolidayError::Invalid {
                        context,
                        reason: format!("make-up day {day} is inside the days off"),
                    });
                }
                holidays.push(Holiday {
                    kind: h.kind,
                    name: h.name.clone(),
                    first,
                    last,
                    makeup,
                    estimated: false,
                });
            }
        }
        let mut lunar = BTreeMap::new();
        for l in &root.lunar {
            let context = format!("lunar {}", l.year);
            let entry = LunarYear {
                new_year: parse_date(&l.new_year, &context)?,
                dragon_boat: parse_date(&l.dragon_boat, &context)?,
                qixi: parse_date(&l.qixi, &context)?,
                mid_autumn: parse_date(&l.mid_autumn, &context)?,
            };
            lunar.insert(l.year, entry);
        }
        for (&year, dates) in &lunar {
            if !published.contains(&year) {
                holidays.extend(estimated_holidays(year, dates));
            }
        }
        let rules = root
            .marketing
            .iter()
            .map(marketing_rule)
            .collect::<Result<Vec<_>, _>>()?;
        let mut marketing = Vec::new();
        for (&year, dates) in &lunar {
            for (spec, rule) in root.marketing.iter().zip(&rules) {
                if let Some((first, last)) = marketing_dates(rule, year, dates) {
                    marketing.push(MarketingEvent {
                        kind: spec.kind,
                        name: spec.name.clone(),
                        first,
                        last,
                    });
                }
            }
        }
        holidays.sort_by_key(|h| h.first);
        marketing.sort_by_key(|m| (m.first, m.kind));
        let mut off_days = BTreeMap::new();
        let mut makeup_days = BTreeSet::new();
        for (index, h) in holidays.iter().enumerate() {
            for (offset, day) in h.first.iter_days().take_while(|d| *d <= h.last).enumerate() {
                off_days.insert(day, (index, offset));
            }
            makeup_days.extend(h.makeup.iter().copied());
        }
        Ok(Self {
            holidays,
            marketing,
            off_days,
            makeup_days,
            published,
            covered: lunar.keys().copied().collect(),
        })
    }

    /// Every holiday block, oldest first.
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }

    /// Every marketing event occurrence, oldest first.
    pub fn marketing(&self) -> &[MarketingEvent] {
        &self.marketing
    }

    /// The last year whose holidays were announced (not estimated).
    pub fn last_published_year(&self) -> Option<i32> {
        self.published.last().copied()
    }

    /// Whether the calendar knows `year` at all (announced or estimated).
    pub fn covers(&self, year: i32) -> bool {
        self.published.contains(&year) || self.covered.contains(&year)
    }

    /// The holiday `date` is a day off for, with the day's number within the block (0 = the
    /// first day off).
    pub fn holiday_on(&self, date: NaiveDate) -> Option<(&Holiday, usize)> {
        let &(index, day) = self.off_days.get(&date)?;
        Some((&self.holidays[index], day))
    }

    /// Whether `date` is a weekend day worked in exchange for a holiday.
    pub fn is_makeup_workday(&self, date: NaiveDate) -> bool {
        self.makeup_days.contains(&date)
    }

    /// Whether people work on `date`: make-up days are working days, days off are not, and
    /// otherwise Monday to Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.is_makeup_workday(date) {
            return true;
        }
        if self.off_days.contains_key(&date) {
            return false;
        }
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The marketing events running on `date`.
    pub fn marketing_on(&self, date: NaiveDate) -> impl Iterator<Item = &MarketingEvent> {
        self.marketing
            .iter()
            .filter(move |m| m.first <= date && date <= m.last)
    }

    /// Holidays and marketing events that overlap `first..=last`, in date order.
    pub fn events_between(&self, first: NaiveDate, last: NaiveDate) -> Vec<CalendarEvent> {
        let mut events: Vec<CalendarEvent> = self
            .holidays
            .iter()
            .filter(|h| h.first <= last && h.last >= first)
            .map(|h| CalendarEvent {
                category: "holiday".to_owned(),
                kind: kind_name(&h.kind),
                name: h.name.clone(),
                first: h.first,
                last: h.last,
                makeup: h.makeup.clone(),
                estimated: h.estimated,
            })
            .chain(
                self.marketing
                    .iter()
                    .filter(|m| m.first <= last && m.last >= first)
                    .map(|m| CalendarEvent {
                        category: "marketing".to_owned(),
                        kind: kind_name(&m.kind),
                        name: m.name.clone(),
                        first: m.first,
                        last: m.last,
                        makeup: Vec::new(),
                        estimated: !self.published.contains(&m.first.year()),
                    }),
            )
            .collect();
        events.sort_by(|a, b| (a.first, &a.kind).cmp(&(b.first, &b.kind)));
        events
    }
}

/// The serde name of a kind (`spring_festival`, `double_11`).
pub fn kind_name<T: Serialize>(kind: &T) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn marketing_rule(spec: &FileMarketing) -> Result<MarketingRule, HolidayError> {
    let context = format!("marketing {}", spec.name);
    match (&spec.date, &spec.lunar, spec.before_new_year) {
        (Some(date), None, None) => {
            let parsed =
                NaiveDate::parse_from_str(&format!("2000-{date}"), "%Y-%m-%d").map_err(|e| {
                    HolidayError::Invalid {
                        context: context.clone(),
                        reason: format!("date {date:?}: {e}"),
                    }
                })?;
            Ok(MarketingRule::Fixed {
                month: parsed.month(),
                day: parsed.day(),
            })
        }
        (None, Some(lunar), None) if lunar == "qixi" => Ok(MarketingRule::Qixi),
        (None, None, Some(days)) if (1..=60).contains(&days) => {
            Ok(MarketingRule::BeforeNewYear(days))
        }
        _ => Err(HolidayError::Invalid {
            context,
            reason:
                "needs exactly one of date (MM-DD), lunar = \"qixi\" or before_new_year (1..=60)"
                    .to_owned(),
        }),
    }
}

fn marketing_dates(
    rule: &MarketingRule,
    year: i32,
    lunar: &LunarYear,
) -> Option<(NaiveDate, NaiveDate)> {
    match rule {
        MarketingRule::Fixed { month, day } => {
            let date = NaiveDate::from_ymd_opt(year, *month, *day)?;
            Some((date, date))
        }
        MarketingRule::Qixi => Some((lunar.qixi, lunar.qixi)),
        MarketingRule::BeforeNewYear(days) => {
            let last = lunar.new_year - Duration::days(2);
            Some((last - Duration::days(i64::from(*days) - 1), last))
        }
    }
}

/// The Qingming solar term (4 or 5 April) by the usual 21st-century approximation
/// `⌊0.2422·Y + 4.81⌋ − ⌊Y/4⌋`, Y the year within the century.
pub fn qingming(year: i32) -> Option<NaiveDate> {
    let y = f64::from(year.rem_euclid(100));
    let day = (0.2422 * y + 4.81).floor() - (y / 4.0).floor();
    NaiveDate::from_ymd_opt(year, 4, day as u32)
}

/// A one-day holiday joined to the weekend next to it, as the notices usually do: Friday
/// to Sunday, Saturday to Monday, Sunday to Monday with Saturday, Monday from Saturday.
fn with_weekend(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let d = Duration::days;
    match day.weekday() {
        Weekday::Fri => (day, day + d(2)),
        Weekday::Sat => (day, day + d(2)),
        Weekday::Sun => (day - d(1), day + d(1)),
        Weekday::Mon => (day - d(2), day),
        _ => (day, day),
    }
}

/// Holidays of a year not announced yet, from the rules in force since 2025: New Year's
/// Day, eight days from New Year's Eve, Qingming, 1–5 May, Dragon Boat, Mid-Autumn (inside
/// the National Day week when it falls there) and 1–7 October. Make-up days are unknown.
fn estimated_holidays(year: i32, lunar: &LunarYear) -> Vec<Holiday> {
    let mut out = Vec::new();
    let mut push = |kind, name: &str, (first, last): (NaiveDate, NaiveDate)| {
        out.push(Holiday {
            kind,
            name: name.to_owned(),
            first,
            last,
            makeup: Vec::new(),
            estimated: true,
        });
    };
    let date = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    if let Some(day) = date(1, 1) {
        push(HolidayKind::NewYear, "元旦", with_weekend(day));
    }
    let eve = lunar.new_year - Duration::days(1);
    push(
        HolidayKind::SpringFestival,
        "春节",
        (eve, eve + Duration::days(7)),
    );
    if let Some(day) = qingming(year) {
        push(HolidayKind::Qingming, "清明节", with_weekend(day));
    }
    if let (Some(first), Some(last)) = (date(5, 1), date(5, 5)) {
        push(HolidayKind::LabourDay, "劳动节", (first, last));
    }
    push(
        HolidayKind::DragonBoat,
        "端午节",
        with_weekend(lunar.dragon_boat),
    );
    if let (Some(first), Some(last)) = (date(10, 1), date(10, 7)) {
        let mid = lunar.mid_autumn;
        if mid >= first - Duration::days(1) && mid <= last + Duration::days(1) {
            push(
                HolidayKind::NationalDay,
                "国庆节、中秋节",
                (
                    first.min(mid),
                    last.max(mid).max(date(10, 8).unwrap_or(last)),
                ),
            );
        } else {
            push(HolidayKind::MidAutumn, "中秋节", with_weekend(mid));
            push(HolidayKind::NationalDay, "国庆节", (first, last));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_china_file_parses_and_covers_2018_to_2026() {
        let cal = HolidayCalendar::china().unwrap();
        assert_eq!(cal.last_published_year(), Some(2026));
        for year in 2018..=2026 {
            let count = cal
                .holidays()
                .iter()
                .filter(|h| h.first.year() == year || h.last.year() == year)
                .filter(|h| h.kind == HolidayKind::SpringFestival && !h.estimated)
                .count();
            assert_eq!(count, 1, "{year}");
        }
        let (h, index) = cal.holiday_on(day(2026, 2, 17)).unwrap();
        assert_eq!(h.kind, HolidayKind::SpringFestival);
        assert_eq!(index, 2);
        assert!(!h.estimated);
    }

    #[test]
    fn makeup_days_are_working_days() {
        let cal = HolidayCalendar::china().unwrap();
        // Saturday 14 February 2026 and Sunday 4 January 2026 are make-up working days.
        for date in [
            day(2026, 2, 14),
            day(2026, 1, 4),
            day(2024, 2, 18),
            day(2019, 2, 2),
        ] {
            assert!(cal.is_makeup_workday(date), "{date}");
            assert!(cal.is_working_day(date), "{date}");
            assert!(
                matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
                "{date}"
            );
        }
        // A holiday weekday is not a working day; an ordinary Saturday is not either.
        assert!(!cal.is_working_day(day(2026, 10, 5)));
        assert!(!cal.is_working_day(day(2026, 3, 7)));
        assert!(cal.is_working_day(day(2026, 3, 9)));
        // Every make-up day in the file is a working day.
        for h in cal.holidays() {
            for d in &h.makeup {
                assert!(cal.is_working_day(*d), "{d}");
            }
        }
    }

    #[test]
    fn unpublished_years_are_estimated_from_the_lunar_table() {
        let cal = HolidayCalendar::china().unwrap();
        let (h, index) = cal.holiday_on(day(2027, 2, 6)).unwrap();
        assert_eq!(h.kind, HolidayKind::SpringFestival);
        assert!(h.estimated);
        assert_eq!(h.first, day(2027, 2, 5), "starts on New Year's Eve");
        assert_eq!(index, 1);
        assert_eq!(qingming(2027), Some(day(2027, 4, 5)));
        assert_eq!(qingming(2024), Some(day(2024, 4, 4)));
        // 2028's Mid-Autumn (3 October) falls inside the National Day week.
        let (h, _) = cal.holiday_on(day(2028, 10, 3)).unwrap();
        assert_eq!(h.kind, HolidayKind::NationalDay);
    }

    #[test]
    fn marketing_dates_include_lunar_qixi_and_the_run_up() {
        let cal = HolidayCalendar::china().unwrap();
        let kinds = |d| cal.marketing_on(d).map(|m| m.kind).collect::<Vec<_>>();
        assert_eq!(kinds(day(2026, 8, 19)), vec![MarketingKind::Qixi]);
        assert_eq!(kinds(day(2026, 11, 11)), vec![MarketingKind::Double11]);
        assert_eq!(kinds(day(2025, 5, 20)), vec![MarketingKind::Day520]);
        assert_eq!(
            kinds(day(2026, 2, 15)),
            vec![MarketingKind::SpringFestivalRunup]
        );
        assert!(kinds(day(2026, 2, 16)).is_empty());
        let events = cal.events_between(day(2026, 9, 20), day(2026, 10, 10));
        let names: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(names, vec!["mid_autumn", "national_day"]);
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(HolidayCalendar::parse("year = 3").is_err());
        let bad_date = r#"[[year]]
year = 2030
holidays = [{ kind = "new_year", name = "x", off = ["2030-01-01", "2030-13-01"] }]"#;
        assert!(matches!(
            HolidayCalendar::parse(bad_date),
            Err(HolidayError::Invalid { .. })
        ));
        let makeup_inside = r#"[[year]]
year = 2030
holidays = [{ kind = "new_year", name = "x", off = ["2030-01-01", "2030-01-03"], makeup = ["2030-01-02"] }]"#;
        assert!(HolidayCalendar::parse(makeup_inside).is_err());
        let rule = "[[marketing]]\nkind = \"qixi\"\nname = \"x\"\n";
        assert!(HolidayCalendar::parse(rule).is_err());
        let ok = "[[year]]\nyear = 2030\nholidays = []\n";
        assert_eq!(HolidayCalendar::parse(ok).unwrap().holidays().len(), 0);
    }
}
