//! `--where` on a dataset: a condition on its partition columns, decided
//! per file from the directory values, so that the files it rules out are
//! never opened. The grammar is the part of SQL such conditions use:
//! `column OP literal` (`=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`),
//! `column [NOT] IN (literal, …)`, `column IS [NOT] NULL`, `NOT`, `AND`,
//! `OR` and parentheses; literals are `'quoted text'` or numbers. Two
//! numbers compare as numbers, anything else as text; a comparison with
//! NULL is not true (as in SQL).

use std::cmp::Ordering;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Compare(usize, Op, String),
    In(usize, Vec<String>, bool),
    IsNull(usize, bool),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&next) = chars.peek() {
        if next.is_whitespace() {
            chars.next();
        } else if next == '\'' {
            chars.next();
            let mut literal = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        literal.push('\'');
                    }
                    Some('\'') => break,
                    Some(other) => literal.push(other),
                    None => return Err("a quoted literal is not closed".to_owned()),
                }
            }
            tokens.push(Token::Text(literal));
        } else if next.is_ascii_digit() || next == '-' || next == '.' {
            let mut number = String::new();
            while let Some(&digit) = chars.peek() {
                if digit.is_ascii_alphanumeric() || digit == '.' || digit == '-' || digit == '+' {
                    number.push(digit);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token::Number(number));
        } else if next.is_alphabetic() || next == '_' || next == '"' {
            let quoted = next == '"';
            if quoted {
                chars.next();
            }
            let mut word = String::new();
            while let Some(&letter) = chars.peek() {
                if quoted && letter == '"' {
                    chars.next();
                    break;
                }
                if !(quoted || letter.is_alphanumeric() || letter == '_') {
                    break;
                }
                word.push(letter);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else {
            chars.next();
            let symbol = match (next, chars.peek()) {
                ('<', Some('=')) => "<=",
                ('>', Some('=')) => ">=",
                ('<', Some('>')) => "<>",
                ('!', Some('=')) => "!=",
                ('=', _) => "=",
                ('<', _) => "<",
                ('>', _) => ">",
                ('(', _) => "(",
                (')', _) => ")",
                (',', _) => ",",
                _ => return Err(format!("unexpected character {next:?}")),
            };
            if symbol.len() == 2 {
                chars.next();
            }
            tokens.push(Token::Symbol(symbol));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    columns: &'a [String],
}

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(found)) if found.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found =
            matches!(self.tokens.get(self.at), Some(Token::Symbol(found)) if *found == symbol);
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.eat_word("not") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        if self.eat_symbol("(") {
            let inner = self.or()?;
            if !self.eat_symbol(")") {
                return Err("a parenthesis is not closed".to_owned());
            }
            return Ok(inner);
        }
        self.comparison()
    }

    fn literal(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Text(text) | Token::Number(text)) => {
                self.at += 1;
                Ok(text)
            }
            _ => Err("expected a literal ('text' or a number)".to_owned()),
        }
    }

    fn comparison(&mut self) -> Result<Condition, String> {
        let Some(Token::Word(name)) = self.tokens.get(self.at).cloned() else {
            return Err("expected a partition column".to_owned());
        };
        self.at += 1;
        let column = self
            .columns
            .iter()
            .position(|column| column.eq_ignore_ascii_case(&name))
            .ok_or_else(|| {
                if self.columns.is_empty() {
                    format!("{name} is not a partition column: these files have none")
                } else {
                    format!(
                        "{name} is not a partition column (they are: {})",
                        self.columns.join(", ")
                    )
                }
            })?;
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            if !self.eat_word("null") {
                return Err("expected NULL after IS".to_owned());
            }
            return Ok(Condition::IsNull(column, !negated));
        }
        let negated = self.eat_word("not");
        if self.eat_word("in") {
            if !self.eat_symbol("(") {
                return Err("expected ( after IN".to_owned());
            }
            let mut values = vec![self.literal()?];
            while self.eat_symbol(",") {
                values.push(self.literal()?);
            }
            if !self.eat_symbol(")") {
                return Err("expected ) after the IN list".to_owned());
            }
            return Ok(Condition::In(column, values, !negated));
        }
        if negated {
            return Err("expected IN after NOT".to_owned());
        }
        let op = match self.tokens.get(self.at) {
            Some(Token::Symbol("=")) => Op::Eq,
            Some(Token::Symbol("<>" | "!=")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            _ => return Err(format!("expected a comparison after {name}")),
        };
        self.at += 1;
        Ok(Condition::Compare(column, op, self.literal()?))
    }
}

/// Parses `text`, whose columns must be among `columns` (the partition columns).
pub(crate) fn parse(text: &str, columns: &[String]) -> Result<Condition, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
        columns,
    };
    let condition = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err("unexpected text after the condition".to_owned());
    }
    Ok(condition)
}

fn compare(value: &str, literal: &str) -> Ordering {
    match (value.parse::<f64>(), literal.parse::<f64>()) {
        (Ok(left), Ok(right)) => left.total_cmp(&right),
        _ => value.cmp(literal),
    }
}

impl Condition {
    /// Whether a file with these partition values is kept (`None`: NULL).
    /// `None` when the answer is unknown (a comparison with NULL).
    pub(crate) fn keeps(&self, values: &[Option<String>]) -> Option<bool> {
        let value = |column: &usize| values.get(*column).cloned().flatten();
        match self {
            Condition::Compare(column, op, literal) => {
                let ordering = compare(&value(column)?, literal);
                Some(match op {
                    Op::Eq => ordering == Ordering::Equal,
                    Op::Ne => ordering != Ordering::Equal,
                    Op::Lt => ordering == Ordering::Less,
                    Op::Le => ordering != Ordering::Greater,
                    Op::Gt => ordering == Ordering::Greater,
                    Op::Ge => ordering != Ordering::Less,
                })
            }
            Condition::In(column, list, wanted) => {
                let value = value(column)?;
                let found = list
                    .iter()
                    .any(|literal| compare(&value, literal) == Ordering::Equal);
                Some(found == *wanted)
            }
            Condition::IsNull(column, wanted) => Some(value(column).is_none() == *wanted),
            Condition::Not(inner) => inner.keeps(values).map(|kept| !kept),
            Condition::And(left, right) => match (left.keeps(values), right.keeps(values)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Condition::Or(left, right) => match (left.keeps(values), right.keeps(values)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(condition: &str, month: Option<&str>, site: Option<&str>) -> bool {
        let columns = ["month".to_owned(), "site".to_owned()];
        parse(condition, &columns)
            .expect(condition)
            .keeps(&[month.map(str::to_owned), site.map(str::to_owned)])
            .unwrap_or(false)
    }

    #[test]
    fn conditions_decide_files_as_sql_would() {
        assert!(keeps("month = '2024-02'", Some("2024-02"), None));
        assert!(!keeps("month = '2024-02'", Some("2024-03"), None));
        assert!(keeps(
            "month >= '2024-02' AND site IN ('a', 'b')",
            Some("2024-10"),
            Some("b")
        ));
        assert!(!keeps(
            "month >= '2024-02' and site in ('a','b')",
            Some("2024-01"),
            Some("b")
        ));
        assert!(
            keeps("month < 10", Some("9"), None),
            "numbers compare as numbers"
        );
        assert!(!keeps("month < '10'", Some("9"), None) || keeps("month < 10", Some("9"), None));
        assert!(
            !keeps("site = 'a'", None, None),
            "NULL is not equal to anything"
        );
        assert!(!keeps("site <> 'a'", None, None), "nor unequal");
        assert!(keeps("site IS NULL", None, None));
        assert!(keeps("site is not null or month = '1'", None, Some("x")));
        assert!(keeps("NOT (site = 'a')", None, Some("b")));
        assert!(keeps("site NOT IN ('a')", None, Some("b")));
        assert!(keeps("\"site\" = 'it''s'", None, Some("it's")));
    }

    #[test]
    fn what_cannot_be_decided_from_directories_is_refused() {
        let columns = ["month".to_owned()];
        for (text, expected) in [
            (
                "result > 5",
                "result is not a partition column (they are: month)",
            ),
            ("month = ", "expected a literal"),
            ("month = 'x", "not closed"),
            ("(month = '1'", "not closed"),
            ("month = '1' extra", "unexpected text"),
            ("month LIKE 'x%'", "expected a comparison"),
        ] {
            let error = parse(text, &columns).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = parse("id = 1", &[]).expect_err("no partitions");
        assert!(error.contains("these files have none"), "{error}");
    }
}
