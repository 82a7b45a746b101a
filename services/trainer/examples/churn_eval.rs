//! Runs the churn protocol with its default settings (what `sextant evaluate churn` runs) and prints
//! the table: `cargo run -p sextant-trainer --example churn_eval -- FILE [PLOT_DIR]`.

use std::path::PathBuf;

use sextant_trainer::evaluate::EvalOptions;
use sextant_trainer::evaluate::churn::evaluate;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(data) = args.next().map(PathBuf::from) else {
        eprintln!("usage: churn_eval FILE [PLOT_DIR]");
        std::process::exit(2);
    };
    let options = EvalOptions {
        plot_dir: args.next().map(PathBuf::from),
        progress: true,
        ..EvalOptions::default()
    };
    match evaluate(&data, &options) {
        Ok(e) => print!("{}", e.table()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
