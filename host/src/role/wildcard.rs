//! IAM's wildcards, as actions and resources of a policy use them.

/// IAM's wildcard match: `*` is any run of characters, `?` any one character.
/// On a mismatch it backtracks only to the last `*`, so the work is at most the
/// pattern's length times the value's, never exponential.
pub fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let same = |a: char, b: char| if ignore_case { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut pi, mut vi) = (0, 0);
    // Where the last `*` was, and where in the value its run would end next.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], v[vi]))) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((star_pi, star_vi)) = star {
            // Let the last `*` swallow one more character and try again.
            pi = star_pi + 1;
            vi = star_vi + 1;
            star = Some((star_pi, star_vi + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
