#pragma once
// The demo's figure as a self-contained SVG: cells in the first two principal components coloured
// by GMM cluster and by membership entropy, and the BIC curve with the chosen K marked.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace cluster_cells {

struct scatter_data {
  std::vector<double> x, y;     // PC1, PC2
  std::vector<long> cluster;    // GMM label per cell
  std::vector<double> entropy;  // per cell, nats
  double max_entropy = 1;       // log K: the colour scale's top
  std::vector<long> curve_k;    // BIC curve
  std::vector<double> curve_bic;
  long chosen_k = 0;
  std::string title;
};

namespace svg {

inline std::string number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", v);
  return buffer;
}

// 20 well-separated categorical colours (Tableau 10 and its light variants).
inline const char* category_colour(long c) {
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
                                  "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"};
  return palette[static_cast<std::size_t>(c % 20)];
}

// A perceptually ordered dark-blue -> yellow ramp (viridis end points and midpoints), t in [0, 1].
inline std::string ramp_colour(double t) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  char buffer[8];
  std::snprintf(buffer, sizeof(buffer), "#%02x%02x%02x",
                static_cast<int>(stops[i][0] + f * (stops[i + 1][0] - stops[i][0])),
                static_cast<int>(stops[i][1] + f * (stops[i + 1][1] - stops[i][1])),
                static_cast<int>(stops[i][2] + f * (stops[i + 1][2] - stops[i][2])));
  return buffer;
}

struct panel {
  double left, top, width, height;
  double x0, x1, y0, y1;  // data ranges
  double px(double v) const { return left + (v - x0) / (x1 - x0) * width; }
  double py(double v) const { return top + height - (v - y0) / (y1 - y0) * height; }
};

inline panel fit_panel(double left, double top, double width, double height, const std::vector<double>& x,
                       const std::vector<double>& y) {
  auto [xmin, xmax] = std::minmax_element(x.begin(), x.end());
  auto [ymin, ymax] = std::minmax_element(y.begin(), y.end());
  double x0 = *xmin, x1 = *xmax, y0 = *ymin, y1 = *ymax;
  const double px = (x1 - x0) * 0.04 + 1e-12, py = (y1 - y0) * 0.04 + 1e-12;
  return {left, top, width, height, x0 - px, x1 + px, y0 - py, y1 + py};
}

inline void frame(std::ostringstream& out, const panel& p, const std::string& title, const std::string& xlabel,
                  const std::string& ylabel, bool integer_x = false) {
  out << "<rect x='" << p.left << "' y='" << p.top << "' width='" << p.width << "' height='" << p.height
      << "' fill='none' stroke='#444'/>\n";
  out << "<text x='" << p.left + p.width / 2 << "' y='" << p.top - 10 << "' text-anchor='middle' font-size='15'>"
      << title << "</text>\n";
  out << "<text x='" << p.left + p.width / 2 << "' y='" << p.top + p.height + 32
      << "' text-anchor='middle' font-size='12'>" << xlabel << "</text>\n";
  out << "<text transform='translate(" << p.left - 56 << "," << p.top + p.height / 2
      << ") rotate(-90)' text-anchor='middle' font-size='12'>" << ylabel << "</text>\n";
  for (int t = 0; t <= 4; ++t) {
    const double vy = p.y0 + (p.y1 - p.y0) * t / 4;
    out << "<text x='" << p.left - 5 << "' y='" << p.py(vy) + 3 << "' text-anchor='end' font-size='10'>" << number(vy)
        << "</text>\n";
    if (integer_x) continue;
    const double vx = p.x0 + (p.x1 - p.x0) * t / 4;
    out << "<text x='" << p.px(vx) << "' y='" << p.top + p.height + 15 << "' text-anchor='middle' font-size='10'>"
        << number(vx) << "</text>\n";
  }
  if (integer_x)
    for (long k = static_cast<long>(std::ceil(p.x0)); k <= static_cast<long>(std::floor(p.x1)); ++k)
      out << "<text x='" << p.px(static_cast<double>(k)) << "' y='" << p.top + p.height + 15
          << "' text-anchor='middle' font-size='10'>" << k << "</text>\n";
}

}  // namespace svg

inline std::string render_figure(const scatter_data& d) {
  std::ostringstream out;
  const double w = 1600, h = 560;
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h << "' viewBox='0 0 " << w << ' '
      << h << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  out << "<text x='" << w / 2 << "' y='28' text-anchor='middle' font-size='18'>" << d.title << "</text>\n";
  const double radius = d.x.size() > 20000 ? 1.0 : 1.8;
  for (int which = 0; which < 2; ++which) {
    const auto p = svg::fit_panel(90 + which * 500, 70, 420, 420, d.x, d.y);
    svg::frame(out, p, which == 0 ? "GMM clusters" : "membership entropy (nats)", "PC1", "PC2");
    out << "<g fill-opacity='0.75'>\n";
    for (std::size_t i = 0; i < d.x.size(); ++i) {
      const std::string colour = which == 0 ? svg::category_colour(d.cluster[i])
                                            : svg::ramp_colour(d.entropy[i] / std::max(1e-12, d.max_entropy));
      out << "<circle cx='" << svg::number(p.px(d.x[i])) << "' cy='" << svg::number(p.py(d.y[i])) << "' r='" << radius
          << "' fill='" << colour << "'/>\n";
    }
    out << "</g>\n";
    if (which == 1) {  // colour bar
      for (int s = 0; s < 50; ++s)
        out << "<rect x='" << p.left + p.width + 8 << "' y='" << p.top + p.height - (s + 1) * p.height / 50
            << "' width='10' height='" << p.height / 50 + 0.5 << "' fill='" << svg::ramp_colour(s / 49.0) << "'/>\n";
      out << "<text x='" << p.left + p.width + 22 << "' y='" << p.top + 8 << "' font-size='10'>"
          << svg::number(d.max_entropy) << "</text><text x='" << p.left + p.width + 22 << "' y='" << p.top + p.height
          << "' font-size='10'>0</text>\n";
    }
  }
  if (!d.curve_k.empty()) {
    std::vector<double> ks(d.curve_k.begin(), d.curve_k.end());
    const auto p = svg::fit_panel(1170, 70, 380, 420, ks, d.curve_bic);
    svg::frame(out, p, "BIC by number of components", "K", "BIC", true);
    out << "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='";
    for (std::size_t i = 0; i < ks.size(); ++i)
      out << svg::number(p.px(ks[i])) << ',' << svg::number(p.py(d.curve_bic[i])) << ' ';
    out << "'/>\n";
    for (std::size_t i = 0; i < ks.size(); ++i) {
      const bool chosen = d.curve_k[i] == d.chosen_k;
      out << "<circle cx='" << svg::number(p.px(ks[i])) << "' cy='" << svg::number(p.py(d.curve_bic[i])) << "' r='"
          << (chosen ? 6 : 3) << "' fill='" << (chosen ? "#d62728" : "#1f77b4") << "'/>\n";
      if (chosen)
        out << "<text x='" << p.px(ks[i]) << "' y='" << p.py(d.curve_bic[i]) - 12
            << "' text-anchor='middle' font-size='12' fill='#d62728'>K = " << d.chosen_k << "</text>\n";
    }
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace cluster_cells
