//! Unit tests of MERGE's pure parts: clause parameters and pruning predicates.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};

use super::*;

#[test]
fn clause_parameters_follow_spark() {
    let clauses = vec![
        MergeClause::Matched {
            condition: Some(crate::expression::parse("s.x > 1").unwrap()),
            action: MatchedAction::UpdateAll,
        },
        MergeClause::Matched {
            condition: None,
            action: MatchedAction::Delete,
        },
        MergeClause::NotMatched {
            condition: None,
            action: NotMatchedAction::InsertAll,
        },
    ];
    let params: HashMap<_, _> = clause_parameters(&clauses).into_iter().collect();
    assert_eq!(
        params["matchedPredicates"],
        r#"[{"predicate":"`s`.`x` > 1","actionType":"update"},{"actionType":"delete"}]"#
    );
    assert_eq!(
        params["notMatchedPredicates"],
        r#"[{"actionType":"insert"}]"#
    );
    assert_eq!(params["notMatchedBySourcePredicates"], "[]");
}

#[test]
fn few_distinct_keys_prune_by_value_many_by_range() {
    let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(3), Some(5)]));
    let p = key_predicate("id", &values, 2).unwrap();
    assert_eq!(p.to_string(), "`id` IN (5, 3)");
    let p = key_predicate("id", &values, 100).unwrap();
    assert_eq!(p.to_string(), "`id` BETWEEN 3 AND 5");
    let strings: ArrayRef = Arc::new(StringArray::from(vec!["b", "a", "c"]));
    let p = key_predicate("k", &strings, 100).unwrap();
    assert_eq!(p.to_string(), "`k` BETWEEN 'a' AND 'c'");
    let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>]));
    assert_eq!(key_predicate("id", &nulls, 0).unwrap().to_string(), "FALSE");
}
