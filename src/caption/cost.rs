//! Prices, to say what a run cost and what a dry run would cost.

use super::Usage;

/// US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    /// What the providers' batch APIs charge: half the list price.
    pub fn batched(self) -> Price {
        Price {
            input: self.input / 2.0,
            output: self.output / 2.0,
        }
    }
}

impl std::str::FromStr for Price {
    type Err = String;

    /// `INPUT,OUTPUT` in dollars per million tokens, as in `0.15,0.60`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |x: &str| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        match s.split_once(',') {
            Some((i, o)) => match (parse(i), parse(o)) {
                (Some(input), Some(output)) => Ok(Price { input, output }),
                _ => Err(format!("'{s}': prices must be numbers of 0 or more")),
            },
            None => Err(format!(
                "'{s}': give INPUT,OUTPUT dollars per million tokens, as in 0.15,0.60"
            )),
        }
    }
}

/// List prices of common models at the time of writing (USD per million tokens). A local
/// server costs nothing; an unknown model has no price until `--price` gives one.
pub fn list_price(model: &str, base_url: Option<&str>) -> Option<Price> {
    const TABLE: &[(&str, f64, f64)] = &[
        ("gpt-4o-mini", 0.15, 0.60),
        ("gpt-4o", 2.50, 10.00),
        ("gpt-4.1-nano", 0.10, 0.40),
        ("gpt-4.1-mini", 0.40, 1.60),
        ("gpt-4.1", 2.00, 8.00),
        ("gpt-5-mini", 0.25, 2.00),
        ("gpt-5-nano", 0.05, 0.40),
        ("claude-3-5-haiku", 0.80, 4.00),
        ("claude-haiku-4-5", 1.00, 5.00),
        ("claude-sonnet-4", 3.00, 15.00),
        ("gemini-2.5-flash", 0.30, 2.50),
        ("gemini-2.0-flash", 0.10, 0.40),
    ];
    if base_url.is_some_and(|url| url == "local" || is_local(url)) {
        return Some(Price {
            input: 0.0,
            output: 0.0,
        });
    }
    // Longest prefix wins, so that gpt-4o-mini is not priced as gpt-4o.
    TABLE
        .iter()
        .filter(|(name, _, _)| model.starts_with(name) || model.contains(&format!("/{name}")))
        .max_by_key(|(name, _, _)| name.len())
        .map(|(_, input, output)| Price {
            input: *input,
            output: *output,
        })
}

fn is_local(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url);
    host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]")
}

pub fn dollars(usage: Usage, price: Price) -> f64 {
    (usage.input_tokens as f64 * price.input + usage.output_tokens as f64 * price.output) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_model_name_sets_the_price() {
        assert_eq!(
            list_price("gpt-4o-mini-2024-07-18", None).unwrap().input,
            0.15
        );
        assert_eq!(list_price("gpt-4o", None).unwrap().input, 2.50);
        assert_eq!(
            list_price("openai/gpt-4o-mini", Some("https://openrouter.ai/api/v1"))
                .unwrap()
                .input,
            0.15
        );
        assert_eq!(
            list_price("qwen2.5vl", Some("http://localhost:11434/v1"))
                .unwrap()
                .input,
            0.0
        );
        assert!(list_price("some-new-model", None).is_none());
    }

    #[test]
    fn prices_parse_and_cost_adds_up() {
        let price: Price = "0.15,0.60".parse().unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
        };
        assert!((dollars(usage, price) - 0.45).abs() < 1e-9);
        assert!("0.15".parse::<Price>().is_err());
        assert!("-1,2".parse::<Price>().is_err());
    }
}
