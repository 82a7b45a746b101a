//! Popularity: every customer gets the items most customers bought. The floor any model must beat,
//! and the cold-start answer for a customer with no known purchases.

use super::Interactions;

/// Number of distinct buyers of each item, as scores.
#[must_use]
pub fn scores(x: &Interactions) -> Vec<f32> {
    x.item_user_counts().iter().map(|&c| c as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::{RecommendError, top_k};

    #[test]
    fn ranks_by_distinct_buyers_not_volume() -> Result<(), RecommendError> {
        let x = Interactions::from_triples(3, 2, &[(0, 0, 50.0), (1, 1, 1.0), (2, 1, 1.0)])?;
        assert_eq!(top_k(&scores(&x), 2), vec![1, 0]);
        Ok(())
    }
}
