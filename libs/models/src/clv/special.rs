//! The Gauss hypergeometric function 2F1, which `statrs` does not have.
//!
//! Two closed forms need it: BG/NBD's expected purchases (`2F1(r, b; a+b-1; z)`, and its conditional
//! form) and Pareto/NBD's likelihood and P(alive) (`2F1(r+s+x, ·; r+s+x+1; z)`). In both, `0 <= z < 1`
//! but `z` gets close to 1 (long horizons, very different α and β), where the plain series converges
//! slowly and, when `c - a - b < 0`, its terms first grow by many orders of magnitude. Euler's
//! transformation `2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z)` turns that case into a series
//! whose terms shrink, so we sum that one instead. For Pareto/NBD the function is used in log form
//! (its values overflow `f64` for heavy buyers), see [`ln_hyp2f1_c_eq_a_plus_1`].
//!
//! No silent answers: a series that has not converged within [`MAX_TERMS`] is an error, which the
//! optimisers treat as an infeasible point.

use super::ClvError;

/// Upper bound on the number of series terms before giving up.
pub const MAX_TERMS: usize = 1_000_000;

/// Relative accuracy the sums aim for.
const EPS: f64 = 1e-16;

/// `2F1(a, b; c; z)` for real `a`, `b`, `c` (`c` not a non-positive integer) and `-1 < z < 1`.
///
/// # Errors
/// [`ClvError::Numerical`] when the arguments are outside that domain or the series does not converge.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64, ClvError> {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) || z <= -1.0 || z >= 1.0
    {
        return Err(ClvError::Numerical(format!(
            "2F1({a}, {b}; {c}; {z}) is outside the supported domain (-1 < z < 1)"
        )));
    }
    if c <= 0.0 && c.fract() == 0.0 {
        return Err(ClvError::Numerical(format!(
            "2F1({a}, {b}; {c}; {z}): c is a non-positive integer"
        )));
    }
    if z > 0.5 && c - a - b < 0.0 {
        // Euler: the transformed series' terms decay like n^(a+b-c-1) z^n instead of growing.
        let scale = (c - a - b) * (1.0 - z).ln();
        let s = series(c - a, c - b, c, z)?;
        return Ok(s * scale.exp());
    }
    series(a, b, c, z)
}

/// `ln 2F1(a, b; a + 1; z)` for `a > 0`, `0 < b < a + 1` and `0 <= z < 1`: the form in the
/// Pareto/NBD likelihood (a = r+s+x, b = s+1 or r+x).
///
/// After Euler's transformation the series `2F1(1, a+1-b; a+1; z)` has positive terms whose ratio is
/// below `z`, so the remainder after a term `t` is at most `t z / (1 - z)`: the stopping rule is exact.
///
/// # Errors
/// [`ClvError::Numerical`] outside that domain or when the series does not converge.
pub fn ln_hyp2f1_c_eq_a_plus_1(a: f64, b: f64, z: f64) -> Result<f64, ClvError> {
    if !(a > 0.0 && b > 0.0 && b < a + 1.0 && (0.0..1.0).contains(&z) && a.is_finite()) {
        return Err(ClvError::Numerical(format!(
            "ln 2F1({a}, {b}; {a}+1; {z}) is outside its domain (a > 0, 0 < b < a+1, 0 <= z < 1)"
        )));
    }
    let beta = a + 1.0 - b;
    let gamma = a + 1.0;
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let bound = z / (1.0 - z);
    for n in 0..MAX_TERMS {
        let nf = n as f64;
        term *= (beta + nf) / (gamma + nf) * z;
        sum += term;
        if term * bound <= EPS * sum {
            return Ok((1.0 - b) * (1.0 - z).ln() + sum.ln());
        }
    }
    Err(ClvError::Numerical(format!(
        "ln 2F1({a}, {b}; {a}+1; {z}) did not converge in {MAX_TERMS} terms"
    )))
}

/// The plain Gauss series `sum (a)_n (b)_n / ((c)_n n!) z^n`.
fn series(a: f64, b: f64, c: f64, z: f64) -> Result<f64, ClvError> {
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let tail = 1.0 / (1.0 - z.abs());
    for n in 0..MAX_TERMS {
        let nf = n as f64;
        let ratio = (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        term *= ratio;
        sum += term;
        if term == 0.0 {
            return Ok(sum);
        }
        // Once the term ratio is below 1 in size and shrinking towards |z|, the remainder is at most
        // |term| / (1 - |z|); stop when that cannot change the sum.
        if ratio.abs() < 1.0 && term.abs() * tail <= EPS * sum.abs() {
            return Ok(sum);
        }
        if !sum.is_finite() {
            break;
        }
    }
    Err(ClvError::Numerical(format!(
        "2F1({a}, {b}; {c}; {z}) did not converge in {MAX_TERMS} terms"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn elementary_closed_forms() -> Result<(), ClvError> {
        for z in [0.0_f64, 0.1, 0.5, 0.9, 0.99, 0.999] {
            // 2F1(1,1;2;z) = -ln(1-z)/z
            let want = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            let got = hyp2f1(1.0, 1.0, 2.0, z)?;
            assert!(close(got, want, 1e-12), "z={z}: {got} vs {want}");
            // 2F1(a,b;b;z) = (1-z)^-a
            let got = hyp2f1(2.5, 0.7, 0.7, z)?;
            assert!(close(got, (1.0 - z).powf(-2.5), 1e-12), "z={z}: {got}");
            // 2F1(1/2,1/2;3/2;z^2) = asin(z)/z
            let w = z.sqrt();
            let want = if z == 0.0 { 1.0 } else { w.asin() / w };
            let got = hyp2f1(0.5, 0.5, 1.5, z)?;
            assert!(close(got, want, 1e-12), "z={z}: {got} vs {want}");
            // 2F1(1/2,1;3/2;z^2) = atanh(z)/z, the c = a + 1 form in logs.
            let want = if z == 0.0 { 1.0 } else { w.atanh() / w };
            let got = ln_hyp2f1_c_eq_a_plus_1(0.5, 1.0, z)?.exp();
            assert!(close(got, want, 1e-12), "z={z}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn matches_mpmath_reference_values() -> Result<(), ClvError> {
        // mpmath 1.3.0, 30 digits: hyp2f1(a, b, c, z).
        let cases = [
            (1.5, 2.25, 4.0, 0.3, 1.335_346_695_002_383),
            (0.2426, 2.4258, 2.2187, 0.946, 2.380_352_716_620_856),
            (0.25, -0.3, 1.7, 0.8, 0.957_957_639_599_100_4),
            (2.0, 3.0, 1.5, 0.6, 31.883_508_809_942_41),
            (26.3, 1.6, 27.3, 0.97, 116.458_079_690_739_01),
        ];
        for (a, b, c, z, want) in cases {
            let got = hyp2f1(a, b, c, z)?;
            assert!(
                close(got, want, 1e-11),
                "2F1({a},{b};{c};{z}) = {got}, want {want}"
            );
        }
        // Large values only in logs: 2F1(3.7, 30.2; 4.7; 0.92) = 1.46282470351600712833789333615e31.
        let got = ln_hyp2f1_c_eq_a_plus_1(3.7, 30.2 - 26.0, 0.92)?;
        let direct = hyp2f1(3.7, 30.2 - 26.0, 4.7, 0.92)?.ln();
        assert!(close(got, direct, 1e-12), "{got} vs {direct}");
        let big = ln_hyp2f1_c_eq_a_plus_1(3.7, 30.2, 0.92);
        // b = 30.2 > a + 1: outside the Pareto/NBD form, refused rather than mis-summed.
        assert!(big.is_err());
        let got = ln_hyp2f1_c_eq_a_plus_1(26.3, 1.6, 0.97)?;
        assert!(close(got, 116.458_079_690_739_01_f64.ln(), 1e-12), "{got}");
        Ok(())
    }

    #[test]
    fn refuses_the_outside_of_its_domain() {
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_err());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_err());
        assert!(hyp2f1(f64::NAN, 1.0, 2.0, 0.5).is_err());
        assert!(ln_hyp2f1_c_eq_a_plus_1(-1.0, 0.5, 0.5).is_err());
    }
}
