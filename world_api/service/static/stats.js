// The tear sheet's numbers, computed in the browser from a strategy's streamed returns.

// Compounded equity starting at 1.
export function equity(returns) {
  const out = new Array(returns.length);
  let e = 1;
  for (let i = 0; i < returns.length; i++) { e *= 1 + returns[i]; out[i] = e; }
  return out;
}

// Drawdown from the running peak (<= 0), over an equity series that starts at 1.
export function drawdown(eq) {
  const out = new Array(eq.length);
  let peak = 1;
  for (let i = 0; i < eq.length; i++) {
    peak = Math.max(peak, eq[i]);
    out[i] = eq[i] / peak - 1;
  }
  return out;
}

export function mean(xs) {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length ? s / xs.length : NaN;
}

// Sample standard deviation (n - 1).
export function std(xs) {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}


// The median gap between consecutive timestamps (ns); 0 with fewer than two.
export function spacing(ts) {
  if (ts.length < 2) return 0;
  const gaps = [];
  for (let i = 1; i < ts.length; i++) gaps.push(Number(ts[i]) - Number(ts[i - 1]));
  gaps.sort((a, b) => a - b);
  const h = gaps.length >> 1;
  return gaps.length % 2 ? gaps[h] : (gaps[h - 1] + gaps[h]) / 2;
}

// Periods per year as the world service annualizes (world_api.domain.world_returns), and a
// backtest: the series' distinct times less one, per 365-day year between the first and the
// last; with fewer than two points, 252 (the daily convention).
export function periodsPerYear(ts) {
  const distinct = new Set(ts.map(Number));
  if (distinct.size < 2) return 252;
  const first = Math.min(...distinct), last = Math.max(...distinct);
  return (distinct.size - 1) / ((last - first) / (365 * 86400 * 1e9));
}

// Sharpe ratio of each trailing window, annualized by sqrt(ppy); NaN before a full window.
export function rollingSharpe(returns, window, ppy) {
  const out = new Array(returns.length).fill(NaN);
  const scale = Math.sqrt(ppy || 1);
  let s = 0, s2 = 0;
  for (let i = 0; i < returns.length; i++) {
    s += returns[i]; s2 += returns[i] * returns[i];
    if (i >= window) { const x = returns[i - window]; s -= x; s2 -= x * x; }
    if (i >= window - 1) {
      const m = s / window;
      const v = (s2 - window * m * m) / (window - 1);
      out[i] = v > 0 ? (m / Math.sqrt(v)) * scale : NaN;
    }
  }
  return out;
}

// The rolling window the tear sheet uses for n returns.
export function rollingWindow(n) {
  return Math.max(5, Math.min(63, Math.floor(n / 4)));
}

// Summary numbers of a return series: total return, annualized volatility and Sharpe,
// max drawdown, best and worst period, share of positive periods.
export function summary(returns, ppy) {
  const eq = equity(returns);
  const dd = drawdown(eq);
  const sd = std(returns);
  const scale = Math.sqrt(ppy || 1);
  return {
    periods: returns.length,
    total_return: returns.length ? eq[eq.length - 1] - 1 : NaN,
    volatility: sd * scale,
    sharpe: sd > 0 ? (mean(returns) / sd) * scale : NaN,
    max_drawdown: dd.length ? -dd.reduce((a, b) => Math.min(a, b), 0) : NaN,
    best: returns.length ? returns.reduce((a, b) => Math.max(a, b), -Infinity) : NaN,
    worst: returns.length ? returns.reduce((a, b) => Math.min(a, b), Infinity) : NaN,
    hit_rate: returns.length ? returns.filter((r) => r > 0).length / returns.length : NaN,
  };
}
