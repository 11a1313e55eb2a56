//! A forecast of one metric of an official account, made by a `forecast` job.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "forecasts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub metric: String,
    /// Days forecast.
    pub horizon: i32,
    /// The job making it.
    pub job_id: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// The forecast (`wxpilot_forecast::ForecastResult` as JSON) once made.
    pub result: Option<Json>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
