//! Checkpoint rules: `STEP.FIELD OP VALUE`, e.g. `reconcile.changed_rate <
//! 0.5%` or `verify-acceptance.failed == 0`. FIELD is a dotted path into the
//! step's evidence (its command's JSON, plus what the run derives, such as
//! a diff's rates); VALUE is a number (with `%`: a percentage of 1) or, for
//! `==` and `!=`, a word.

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

/// What a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// A number (a percentage already divided by 100).
    Number(f64),
    /// A word, for `==` and `!=`.
    Text(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written.
    pub text: String,
    /// The step whose evidence it reads.
    pub step: String,
    /// The dotted field path in that evidence.
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The value compared with.
    pub expected: Expected,
}

impl Rule {
    /// Parses `STEP.FIELD OP VALUE`.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let operators = [
            ("<=", Op::LessOrEqual),
            (">=", Op::GreaterOrEqual),
            ("==", Op::Equal),
            ("!=", Op::NotEqual),
            ("<", Op::Less),
            (">", Op::Greater),
        ];
        let found = operators
            .iter()
            .filter_map(|(symbol, op)| text.find(symbol).map(|at| (at, *symbol, *op)))
            .min_by_key(|(at, symbol, _)| (*at, std::cmp::Reverse(symbol.len())));
        let Some((at, symbol, op)) = found else {
            return Err(format!(
                "{text}: a rule is STEP.FIELD OP VALUE, with OP one of < <= > >= == !="
            ));
        };
        let left = text[..at].trim();
        let right = text[at + symbol.len()..].trim();
        let Some((step, field)) = left.split_once('.') else {
            return Err(format!(
                "{text}: the left side is STEP.FIELD, e.g. reconcile.changed_rate"
            ));
        };
        if step.is_empty() || field.is_empty() || right.is_empty() {
            return Err(format!("{text}: a rule is STEP.FIELD OP VALUE"));
        }
        let expected = match right.strip_suffix('%') {
            Some(number) => match number.trim().parse::<f64>() {
                Ok(number) => Expected::Number(number / 100.0),
                Err(_) => return Err(format!("{text}: {right} is not a percentage")),
            },
            None => match right.parse::<f64>() {
                Ok(number) => Expected::Number(number),
                Err(_) if matches!(op, Op::Equal | Op::NotEqual) => {
                    Expected::Text(right.trim_matches('"').to_owned())
                }
                Err(_) => return Err(format!("{text}: {right} is not a number")),
            },
        };
        Ok(Rule {
            text: text.to_owned(),
            step: step.to_owned(),
            field: field.to_owned(),
            op,
            expected,
        })
    }

    /// Evaluates the rule on a step's evidence; an error when the field
    /// is absent or not comparable.
    pub fn holds(&self, evidence: &serde_json::Value) -> Result<bool, String> {
        let mut value = evidence;
        for part in self.field.split('.') {
            value = value
                .get(part)
                .ok_or_else(|| format!("{}: {} has no {}", self.text, self.step, self.field))?;
        }
        match (&self.expected, value) {
            (Expected::Number(expected), value) => {
                let actual = value.as_f64().ok_or_else(|| {
                    format!(
                        "{}: {}.{} is not a number",
                        self.text, self.step, self.field
                    )
                })?;
                Ok(match self.op {
                    Op::Less => actual < *expected,
                    Op::LessOrEqual => actual <= *expected,
                    Op::Greater => actual > *expected,
                    Op::GreaterOrEqual => actual >= *expected,
                    Op::Equal => (actual - expected).abs() < f64::EPSILON,
                    Op::NotEqual => (actual - expected).abs() >= f64::EPSILON,
                })
            }
            (Expected::Text(expected), value) => {
                let actual = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Ok(match self.op {
                    Op::Equal => actual == *expected,
                    _ => actual != *expected,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_compare_numbers_percentages_and_words() {
        let evidence = serde_json::json!({"changed_rate": 0.004, "summary": {"missing": 0}, "status": "passed"});
        let holds = |text: &str| Rule::parse(text).and_then(|rule| rule.holds(&evidence));
        assert_eq!(holds("a.changed_rate < 0.5%"), Ok(true));
        assert_eq!(holds("a.changed_rate >= 0.5%"), Ok(false));
        assert_eq!(holds("a.summary.missing == 0"), Ok(true));
        assert_eq!(holds("a.status == passed"), Ok(true));
        assert_eq!(holds("a.status != passed"), Ok(false));
        assert!(holds("a.nothing < 1").is_err());
        assert!(Rule::parse("changed_rate < 1").is_err());
        assert!(Rule::parse("a.b ~ 1").is_err());
        assert!(Rule::parse("a.b < lots").is_err());
    }
}
