//! Discounted customer lifetime value with explicit time units.
//!
//! The purchase models run in their own time unit (weeks here), while a business states the horizon
//! and the discount rate per month. Mixing them silently is a classic error: `lifetimes`' default
//! `freq='D'` on weekly data treats every week as a day, so "12 months" becomes 360 weeks. Here the
//! conversion is a required field, [`Horizon::model_units_per_month`]:
//!
//! `CLV = Σ_{k=1..months} E[M] · (E[Y(k·u)] - E[Y((k-1)·u)]) / (1 + d)^k`
//!
//! with `u` model units per month, `d` the monthly discount rate, `E[Y(t)]` the customer's conditional
//! expected purchases by `t` and `E[M]` their expected spend per purchase. Purchases in month k are
//! discounted by k whole months (end-of-month cash flows).

use super::ClvError;

/// Weeks in an average month (365.25 / 12 / 7).
pub const WEEKS_PER_MONTH: f64 = 365.25 / 12.0 / 7.0;

/// A CLV horizon and its discounting, in business units, with the conversion to model time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Horizon {
    /// Number of months.
    pub months: u32,
    /// Discount rate per month (0.01 = 1 %).
    pub monthly_discount_rate: f64,
    /// Model time units in one month ([`WEEKS_PER_MONTH`] for weekly models).
    pub model_units_per_month: f64,
}

impl Horizon {
    /// A horizon for a model fitted in weeks.
    #[must_use]
    pub fn weekly_model(months: u32, monthly_discount_rate: f64) -> Self {
        Self {
            months,
            monthly_discount_rate,
            model_units_per_month: WEEKS_PER_MONTH,
        }
    }

    /// The discounted value of a customer with expected spend per purchase `spend`, whose expected
    /// purchases by model time `t` are `cumulative(t)`.
    ///
    /// # Errors
    /// [`ClvError::Numerical`] for a non-positive unit conversion or a rate at or below -100 %, and
    /// whatever `cumulative` returns.
    pub fn discounted_value(
        &self,
        spend: f64,
        cumulative: &dyn Fn(f64) -> Result<f64, ClvError>,
    ) -> Result<f64, ClvError> {
        if !(self.model_units_per_month > 0.0 && self.model_units_per_month.is_finite())
            || self.monthly_discount_rate <= -1.0
        {
            return Err(ClvError::Numerical(format!(
                "bad CLV horizon: {} model units per month, discount rate {}",
                self.model_units_per_month, self.monthly_discount_rate
            )));
        }
        let mut value = 0.0;
        let mut previous = 0.0;
        for k in 1..=self.months {
            let now = cumulative(f64::from(k) * self.model_units_per_month)?;
            value += spend * (now - previous) / (1.0 + self.monthly_discount_rate).powi(k as i32);
            previous = now;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_gives_an_annuity_in_months_not_model_units() -> Result<(), ClvError> {
        // One purchase a week of value 10, 12 months, no discount: 10 × 12 × weeks per month.
        let h = Horizon::weekly_model(12, 0.0);
        let v = h.discounted_value(10.0, &|t| Ok(t))?;
        assert!((v - 10.0 * 365.25 / 7.0).abs() < 1e-9, "{v}");
        // 1 % a month: each month's 10 × 4.348 is divided by 1.01^k.
        let h = Horizon::weekly_model(12, 0.01);
        let v = h.discounted_value(10.0, &|t| Ok(t))?;
        let want: f64 = (1..=12)
            .map(|k| 10.0 * WEEKS_PER_MONTH / 1.01_f64.powi(k))
            .sum();
        assert!((v - want).abs() < 1e-9, "{v} vs {want}");
        Ok(())
    }

    #[test]
    fn refuses_a_meaningless_conversion() {
        let h = Horizon {
            months: 12,
            monthly_discount_rate: 0.01,
            model_units_per_month: 0.0,
        };
        assert!(h.discounted_value(1.0, &|t| Ok(t)).is_err());
    }
}
