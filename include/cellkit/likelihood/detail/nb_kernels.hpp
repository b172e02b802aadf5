#pragma once
/// @file
/// Element kernels of the Poisson, NB and ZINB log-probabilities and their gradients (not a public
/// interface: the public functors in nb.hpp, zinb.hpp and poisson.hpp call these, and so do the
/// array sweeps, so the element math exists once). Derivations are in docs/likelihood.md.
///
/// Conventions: `x` is the count (x >= 0, real), `mu` the NB mean (>= 0), theta the inverse
/// dispersion (> 0, +inf = Poisson), `pi` the zero-inflation probability. Results are the
/// log-probability and its partial derivatives (not negated). Invalid arguments give NaN; the
/// public functors document it.

#include <cellkit/core/config.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/likelihood/detail/fast_math.hpp>
#include <cellkit/likelihood/detail/nb_math.hpp>

namespace cellkit::likelihood {

/// The per-theta quantities of the NB kernels, computed once per theta (once per gene when theta is
/// per gene) by `nb_theta<T>::make(theta)` (cost: theta >= 10: three divisions; theta < 10: the
/// recurrences of stirlerr and of digamma, ~21 divisions and two logs). Pass it to the functors'
/// `(x, mu, nb_theta, ...)` overloads to skip that work per element.
template <class T>
struct nb_theta {
  static_assert(detail::is_real_v<T>, "cellkit::likelihood: T must be float or double");

  T theta = T(1);           ///< inverse dispersion (> 0; +inf is the Poisson limit)
  T inv_theta = T(1);       ///< 1 / theta (0 for +inf)
  T stirlerr_theta = T(0);  ///< stirlerr(theta) (0 for +inf)
  /// digamma(theta) - log(theta) (phi_select), filled only for theta < 10 (the only case that uses it)
  T phi_theta = T(0);
  bool poisson = false;  ///< theta = +inf
  bool valid = true;     ///< theta > 0 (false for theta <= 0 or NaN: kernels then return NaN)

  CELLKIT_HD static nb_theta make(T theta) noexcept {
    nb_theta r;
    r.theta = theta;
    r.valid = theta > T(0);
    r.poisson = theta == detail::inf_v<T>();
    r.inv_theta = T(1) / theta;
    if (r.valid && !r.poisson) {
      r.stirlerr_theta = detail::stirlerr(theta);
      if (theta < detail::asymptotic_min_v<T>) r.phi_theta = detail::phi_select(theta);
    }
    return r;
  }

  /// Only theta, inv_theta, poisson and valid: all that the x = 0 kernels read (no special function).
  CELLKIT_HD static nb_theta make_light(T theta) noexcept {
    nb_theta r;
    r.theta = theta;
    r.valid = theta > T(0);
    r.poisson = theta == detail::inf_v<T>();
    r.inv_theta = T(1) / theta;
    return r;
  }
};

/// log NB(x | mu, theta) and its partial derivatives.
template <class T>
struct nb_value_grad {
  T log_prob;  ///< log NB(x | mu, theta)
  T d_mu;      ///< d log NB / d mu
  T d_theta;   ///< d log NB / d theta
};

/// log Poisson(x | mu) and its derivative.
template <class T>
struct poisson_value_grad {
  T log_prob;  ///< log Poisson(x | mu)
  T d_mu;      ///< d log Poisson / d mu
};

/// log ZINB(x | mu, theta, pi) and its partial derivatives; d_pi is with respect to the probability
/// pi or to its logit, depending on the functor.
template <class T>
struct zinb_value_grad {
  T log_prob;
  T d_mu;
  T d_theta;
  T d_pi;
};

namespace detail {

template <class T>
CELLKIT_HD inline nb_value_grad<T> nb_nan() noexcept {
  return {nan_v<T>(), nan_v<T>(), nan_v<T>()};
}

/// True when (x, mu) are in the domain: x >= 0, 0 <= mu < inf (NaN fails).
template <class T>
CELLKIT_HD inline bool counts_mean_valid(T x, T mu) noexcept {
  return x >= T(0) && x < inf_v<T>() && mu >= T(0) && mu < inf_v<T>();
}

// ---------------------------------------------------------------------------------------------------
// Poisson

/// x = 0: log P = -mu, d/dmu = -1.
template <class T, bool Grad>
CELLKIT_HD inline poisson_value_grad<T> poisson_zero(T mu) noexcept {
  poisson_value_grad<T> r{-mu, T(0)};
  if constexpr (Grad) r.d_mu = T(-1);
  return r;
}

/// x > 0, Loader's form: log P = -log(2 pi x)/2 - stirlerr(x) + x log1pmx((mu - x)/x).
/// d/dmu = (x - mu)/mu (+inf at mu = 0, where log P = -inf).
template <class T, bool Grad>
CELLKIT_HD inline poisson_value_grad<T> poisson_positive(T x, T mu) noexcept {
  const T inv_x = T(1) / x;
  poisson_value_grad<T> r{-T(0.5) * flog(two_pi_v<T> * x) - stirlerr(x) + x * log1pmx((mu - x) * inv_x, mu * inv_x),
                          T(0)};
  if (mu == T(0)) r.log_prob = -inf_v<T>();
  if constexpr (Grad) r.d_mu = (x - mu) / mu;
  return r;
}

// ---------------------------------------------------------------------------------------------------
// NB

/// x = 0: log NB(0) = -theta log1p(mu/theta); d/dmu = -theta/(theta + mu) = -1/(1 + s), s = mu/theta;
/// d/dtheta = -(log1p(s) - s/(1 + s)) (log1p_minus_frac, accurate for small s). Poisson: -mu, -1, 0.
template <class T, bool Grad>
CELLKIT_HD inline nb_value_grad<T> nb_zero(T mu, const nb_theta<T>& th, bool want_theta) noexcept {
  nb_value_grad<T> r{T(0), T(0), T(0)};
  if (th.poisson) {
    r.log_prob = -mu;
    if constexpr (Grad) r.d_mu = T(-1);
    return r;
  }
  const T s = mu * th.inv_theta;
  const T log1p_s = math::log1p(s);
  r.log_prob = -th.theta * log1p_s;
  if constexpr (Grad) {
    const T inv_1ps = T(1) / (T(1) + s);
    r.d_mu = -inv_1ps;
    if (want_theta) r.d_theta = -log1p_minus_frac(s, log1p_s, inv_1ps);
  }
  return r;
}

/// phi(theta + x) - phi(theta), phi(z) = digamma(z) - log z, the theta-derivative's lgamma part:
/// - theta >= 10: phi_diff (divided-difference series, relative accuracy for every x);
/// - theta < 10: phi_select(theta + x) - phi(theta) (phi_series from 10: no large digamma(n) - log(n)
///   to cancel), phi(theta) = th.phi_theta = phi_select(theta).
/// (Branches for scalar code; positive_kernel selects between the same expressions: phi_select(n)
/// equals phi_series(n) bit for bit from 10.)
template <class T>
CELLKIT_HD inline T phi_diff_any(T theta, T x, T n, const nb_theta<T>& th) noexcept {
  if (theta >= asymptotic_min_v<T>) return phi_diff(theta, x);
  if (n >= asymptotic_min_v<T>) return phi_series(n) - th.phi_theta;
  return phi_select(n) - th.phi_theta;
}

/// The counts for which nb_positive's theta-derivative uses the exact sum instead of phi_diff_any:
/// integers 1..16.
template <class T>
CELLKIT_HD inline bool small_integer_count(T x) noexcept {
  const bool in_range = x >= T(0) && x <= T(16);  // (no conversion outside int's range: UB)
  const int k = in_range ? static_cast<int>(x) : 0;
  return in_range && T(k) == x;
}

/// nb_theta for one x > 0 element, with phi_theta only where nb_positive reads it (d_theta wanted
/// and x not a small integer): with a theta per element that spares a digamma and a log per count.
/// The fields nb_positive reads equal those of nb_theta::make.
template <class T>
CELLKIT_HD inline nb_theta<T> theta_for_positive(T theta, T x, bool want_theta) noexcept {
  if (want_theta && !small_integer_count(x)) return nb_theta<T>::make(theta);
  nb_theta<T> r = nb_theta<T>::make_light(theta);
  if (r.valid && !r.poisson) r.stirlerr_theta = stirlerr(theta);
  return r;
}

/// x > 0 (theta finite), Loader's saddle-point form with n = theta + x and
/// delta = theta (x - mu)/(theta + mu):
///   log NB = log(theta / (2 pi x n))/2 + stirlerr(n) - stirlerr(theta) - stirlerr(x)
///            + theta log1pmx(delta/theta) + x log1pmx(-delta/x),
/// where 1 + delta/theta = n/(theta + mu) and 1 - delta/x = mu n/(x (theta + mu)) are formed as
/// products (no cancellation near -1). d/dmu = delta/mu.
/// d/dtheta = phi(n) - phi(theta) + log1pmx(delta/theta), phi(z) = digamma(z) - log z (phi_diff_any);
/// for integer x <= 16 instead E + x mu/(theta (theta + mu)) - log1p_minus_frac(mu/theta) with the
/// exact sum E = -(1/theta) sum_{i<x} i/(theta + i), which keeps its relative accuracy as mu -> 0 at
/// x = 1 (where the first form cancels completely) and avoids the cancellation inside phi_diff_any
/// for moderate theta.
template <class T, bool Grad>
CELLKIT_HD inline nb_value_grad<T> nb_positive(T x, T mu, const nb_theta<T>& th, bool want_theta) noexcept {
  nb_value_grad<T> r{T(0), T(0), T(0)};
  if (th.poisson) {
    const poisson_value_grad<T> p = poisson_positive<T, Grad>(x, mu);
    r.log_prob = p.log_prob;
    r.d_mu = p.d_mu;
    return r;
  }
  const T theta = th.theta;
  const T n = theta + x;
  const T inv_tm = T(1) / (theta + mu);
  const T w = (x - mu) * inv_tm;  // delta / theta
  const T delta = theta * w;
  const T inv_x = T(1) / x;
  const T lw = log1pmx(w, n * inv_tm);
  const T l2 = log1pmx(-delta * inv_x, (mu * inv_x) * (n * inv_tm));
  r.log_prob = T(0.5) * flog(theta / (two_pi_v<T> * x * n)) + ((stirlerr(n) - th.stirlerr_theta) - stirlerr(x)) +
               (theta * lw + x * l2);
  if (mu == T(0)) r.log_prob = -inf_v<T>();  // (l2 = log1pmx(-1) = -inf; flog(0) is not defined)
  if constexpr (Grad) {
    r.d_mu = delta / mu;
    if (want_theta) {
      if (small_integer_count(x)) {
        const int k = static_cast<int>(x);
        // small integer x: E + x mu/(theta (theta + mu)) - h(mu/theta), E = digamma(theta + x) -
        // digamma(theta) - x/theta = -(1/theta) sum_{i<x} i/(theta + i): every part has full relative
        // accuracy (E = 0 for x = 1, where the other form cancels as mu -> 0).
        T e_sum = T(0);
        for (int i = k - 1; i >= 1; --i) e_sum += T(i) / (theta + T(i));
        const T s = mu * th.inv_theta;
        const T inv_1ps = theta * inv_tm;
        const T log1p_s = s < log1pmx_series_max_v<T> ? T(0) : flog1p_hint(s, T(1) + s, inv_1ps);
        r.d_theta = (x * s * inv_tm - e_sum * th.inv_theta) - log1p_minus_frac(s, log1p_s, inv_1ps);
      } else {
        r.d_theta = phi_diff_any(theta, x, n, th) + lw;
      }
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------
// ZINB

/// pi and 1 - pi, both with full relative accuracy, from the probability or the logit.
template <class T>
struct zi_weights {
  T pi;
  T pi1;  ///< 1 - pi
};

template <class T, bool Logits>
CELLKIT_HD inline zi_weights<T> make_zi_weights(T p) noexcept {
  if constexpr (Logits) {
    const T e = math::exp(p < T(0) ? p : -p);  // e^-|p|
    const T s = T(1) / (T(1) + e);
    const T es = e * s;
    return p >= T(0) ? zi_weights<T>{s, es} : zi_weights<T>{es, s};
  } else {
    return {p, T(1) - p};
  }
}

/// log pi and log(1 - pi) (rare paths only).
template <class T, bool Logits>
CELLKIT_HD inline T log_pi_of(T p) noexcept {
  if constexpr (Logits) {
    return math::log_sigmoid(p);
  } else {
    return math::log(p);
  }
}
template <class T, bool Logits>
CELLKIT_HD inline T log_pi1_of(T p) noexcept {
  if constexpr (Logits) {
    return math::log_sigmoid(-p);
  } else {
    return math::log1p(-p);
  }
}

/// Where pi + (1 - pi) NB(0) falls below this, the value and weights come from logarithms (log-sum-exp).
template <class T>
inline constexpr T zinb_tiny_v = std::is_same_v<T, float> ? T(1e-30) : T(1e-290);

/// x = 0, the careful scalar form (std log1p / expm1; used where the branch-free zero_kernel reports
/// `fallback`: Z below zinb_tiny, or a subnormal pi from logits): v = log(pi + (1 - pi) N), N = NB(0) = exp(l0),
/// from the NB zero kernel `nb0`.
/// With e = N - 1 (expm1(l0) when N > 1/2, else exp(l0) - 1; both exact to a few ulp) and
/// q = (1 - pi) e = Z - 1: v = log1p(q) when q >= -1/2, else log(Z), Z = pi + (1 - pi) N (a sum of
/// non-negative terms), else (Z < tiny) log_sum_exp(log pi, log(1 - pi) + l0).
/// dv/dpi = (1 - N)/Z, dv/dlogit = (1 - N) pi (1 - pi)/Z, dv/dmu = w dl0/dmu, dv/dtheta = w dl0/dtheta
/// with w = (1 - pi) N / Z (the posterior probability that the zero is an NB zero).
template <class T, bool Grad, bool Logits>
CELLKIT_HD inline zinb_value_grad<T> zinb_zero_fallback(const nb_value_grad<T>& nb0, T p) noexcept {
  const zi_weights<T> z = make_zi_weights<T, Logits>(p);
  const T l0 = nb0.log_prob;
  constexpr T minus_ln2 = T(-0.693147180559945309417232121458176568);
  T N;
  T e;
  if (l0 > minus_ln2) {
    e = math::expm1(l0);
    N = T(1) + e;
  } else {
    N = math::exp(l0);
    e = N - T(1);
  }
  const T q = z.pi1 * e;
  const T Z = z.pi + z.pi1 * N;
  zinb_value_grad<T> r{T(0), T(0), T(0), T(0)};
  const bool tiny = !(Z >= zinb_tiny_v<T>);
  if (q >= T(-0.5)) {
    r.log_prob = math::log1p(q);
  } else if (!tiny) {
    r.log_prob = math::log(Z);
  } else {
    r.log_prob = math::log_sum_exp(log_pi_of<T, Logits>(p), log_pi1_of<T, Logits>(p) + l0);
  }
  if constexpr (Grad) {
    T w;
    T dpi;
    if (!tiny) {
      const T inv_z = T(1) / Z;
      w = z.pi1 * N * inv_z;
      if constexpr (Logits) {
        // pi / Z from logarithms when pi is subnormal or has underflowed (logit < ~ -708; float -87)
        dpi = z.pi >= zinb_tiny_v<T> ? -e * (z.pi * z.pi1) * inv_z
                                     : -e * z.pi1 * math::exp(log_pi_of<T, Logits>(p) - r.log_prob);
      } else {
        dpi = -e * inv_z;
      }
    } else {
      const T v = r.log_prob;
      w = math::exp(log_pi1_of<T, Logits>(p) + l0 - v);
      if constexpr (Logits) {
        dpi = -e * math::exp(log_pi_of<T, Logits>(p) + log_pi1_of<T, Logits>(p) - v);
      } else {
        dpi = -e * math::exp(-v);
      }
    }
    r.d_mu = w * nb0.d_mu;
    r.d_theta = w * nb0.d_theta;
    r.d_pi = dpi;
  }
  return r;
}

/// x > 0: v = log(1 - pi) + log NB(x); dv/dpi = -1/(1 - pi), dv/dlogit = -pi.
template <class T, bool Grad, bool Logits>
CELLKIT_HD inline zinb_value_grad<T> zinb_positive(const nb_value_grad<T>& nb, T p) noexcept {
  zinb_value_grad<T> r{T(0), nb.d_mu, nb.d_theta, T(0)};
  if constexpr (Logits) {
    r.log_prob = -math::softplus(p) + nb.log_prob;
    if constexpr (Grad) r.d_pi = -math::sigmoid(p);
  } else {
    const T pi1 = T(1) - p;
    const T inv_pi1 = T(1) / pi1;
    r.log_prob = (p == T(1) ? -inf_v<T>() : flog1p_hint(-p, pi1, inv_pi1)) + nb.log_prob;
    if constexpr (Grad) r.d_pi = -inv_pi1;
  }
  return r;
}

template <class T, bool Logits>
CELLKIT_HD inline bool pi_valid(T p) noexcept {
  if constexpr (Logits) {
    return p == p;
  } else {
    return p >= T(0) && p <= T(1);
  }
}

// ---------------------------------------------------------------------------------------------------
// the x = 0 kernel, branch-free (vectorised by the host sweep), and the element function

enum class model_kind { poisson, nb, zinb, zinb_logits };

template <model_kind Kind>
inline constexpr bool has_pi_v = Kind == model_kind::zinb || Kind == model_kind::zinb_logits;
template <model_kind Kind>
inline constexpr bool has_theta_v = Kind != model_kind::poisson;

template <class T>
struct zero_result {
  zinb_value_grad<T> r;
  T pi;           ///< the zero-inflation probability (for the ridge penalty; 0 without pi)
  bool fallback;  ///< the careful scalar form must replace r (rare: see zinb_zero_fallback)
};

/// The x > 0 counterpart of zero_result (positive_kernel).
template <class T>
struct positive_result {
  zinb_value_grad<T> r;
  T pi;           ///< the zero-inflation probability (for the ridge penalty; 0 without pi)
  bool fallback;  ///< the scalar positive_element must replace r
};

/// Series below 1/4 (see log1p_minus_frac), from log1p(s) = L and 1/(1 + s) = inv_u: both sides are
/// computed and one is selected (no branch).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T log1p_minus_frac_select(T s, T log1p_s, T inv_u) noexcept {
  const T z = s / (T(2) + s);
  const T z2 = z * z;
  const T series = z * s * inv_u + T(2) * (z2 * z) * atanh_tail(z2);
  const T direct = log1p_s - s * inv_u;
  return sel(s < log1pmx_series_max_v<T>, series, direct);
}

/// The x = 0 element of every model with selects only, so that a loop over it vectorises:
/// NB: l0 = -theta log1p(s), s = mu/theta (log1p from flog), d/dmu = -1/(1 + s), d/dtheta =
/// -log1p_minus_frac(s); theta = +inf: -mu, -1, 0. ZINB: N, e = exp, expm1 of l0 (one fexp_pair),
/// q = (1 - pi) e, v = log1p(q) if q >= -1/2 else log(Z), Z = pi + (1 - pi) N (one flog either way), and
/// the gradients of zinb_zero_fallback. `fallback` is set where that careful form is needed (Z < tiny,
/// or a subnormal pi from a logit). Invalid arguments give NaN.
template <class T, model_kind Kind, bool Grad>
CELLKIT_HD CELLKIT_LK_INLINE zero_result<T> zero_kernel(T mu, T theta, T inv_theta, T p, bool want_theta) noexcept {
  // Every floating-point operation is computed unconditionally and only results are selected: under
  // the default -ftrapping-math a compiler may not speculate a conditional operation, and the branch
  // it keeps would stop the vectorisation of the sweep's loop.
  const T inf = inf_v<T>();
  const T nan = nan_v<T>();
  zero_result<T> out{{T(0), T(0), T(0), T(0)}, T(0), false};
  bool valid = (mu >= T(0)) & (mu < inf);
  const T minus_mu = -mu;
  if constexpr (Kind == model_kind::poisson) {
    (void)theta;
    (void)inv_theta;
    (void)p;
    (void)want_theta;
    out.r.log_prob = sel(valid, minus_mu, nan);
    if constexpr (Grad) out.r.d_mu = sel(valid, T(-1), nan);
    return out;
  } else {
    const bool poisson = theta == inf;
    valid = valid & (theta > T(0));
    const T s_nb = mu * inv_theta;
    const T s = sel(poisson, T(0), s_nb);
    const T u = T(1) + s;
    const T inv_u = T(1) / u;
    const T log1p_s = flog1p_hint(s, u, inv_u);
    const T l0_nb = -theta * log1p_s;
    const T l0 = sel(poisson, minus_mu, l0_nb);
    T g_mu = T(0);
    T g_th = T(0);
    if constexpr (Grad) {
      const T minus_inv_u = -inv_u;
      g_mu = sel(poisson, T(-1), minus_inv_u);
      if (want_theta) {
        const T h = -log1p_minus_frac_select(s, log1p_s, inv_u);
        g_th = sel(poisson, T(0), h);
      }
    }
    if constexpr (Kind == model_kind::nb) {
      (void)p;
      out.r = {sel(valid, l0, nan), sel(valid, g_mu, nan), sel(valid, g_th, nan), T(0)};
      return out;
    } else {
      constexpr bool logits = Kind == model_kind::zinb_logits;
      T pi;
      T pi1;
      if constexpr (logits) {
        valid = valid & (p == p);
        const T minus_p = -p;
        const T el = fexp_pair(sel(p < T(0), p, minus_p)).exp;  // e^-|p|
        const T sg = T(1) / (T(1) + el);
        const T es = el * sg;
        pi = sel(p >= T(0), sg, es);
        pi1 = sel(p >= T(0), es, sg);
        out.fallback = !(pi >= zinb_tiny_v<T>);
      } else {
        valid = valid & (p >= T(0)) & (p <= T(1));
        pi = p;
        pi1 = T(1) - p;
      }
      const exp_pair<T> ep = fexp_pair(l0);
      const T q = pi1 * ep.expm1;
      const T z = pi + pi1 * ep.exp;
      const bool small = q >= T(-0.5);
      const T one_q = T(1) + q;
      const T arg = sel(small, one_q, z);
      const T inv_arg = T(1) / arg;
      const T correction = (q - (arg - T(1))) * inv_arg;  // log1p's correction, used when small
      const T v = flog(arg) + sel(small, correction, T(0));
      out.fallback = (out.fallback | !(z >= zinb_tiny_v<T>)) & valid;
      out.pi = pi;
      out.r.log_prob = sel(valid, v, nan);
      if constexpr (Grad) {
        const T w = pi1 * ep.exp * inv_arg;
        const T d_mu = w * g_mu;
        const T d_th = w * g_th;
        T d_pi;
        if constexpr (logits) {
          d_pi = -ep.expm1 * (pi * pi1) * inv_arg;
        } else {
          d_pi = -ep.expm1 * inv_arg;
        }
        out.r.d_mu = sel(valid, d_mu, nan);
        out.r.d_theta = sel(valid, d_th, nan);
        out.r.d_pi = sel(valid, d_pi, nan);
      }
      return out;
    }
  }
}

/// The x > 0 element of NB and ZINB with selects only, so that a loop over gathered elements
/// vectorises: nb_positive and zinb_positive with the same formulas. `stirlerr_theta` and
/// `phi_theta` are the caller's (nb_theta's fields, per gene or per element). With `Want` (d theta)
/// the caller sorts the elements: `SmallInt` for integer counts 1..16 (small_integer_count: the
/// exact sum), otherwise phi_diff_any. With pi as a logit only the NB part: the caller completes it
/// with zinb_positive (its softplus and sigmoid are libm calls). `fallback` marks the elements the
/// scalar positive_element must compute instead: arguments outside the domain, mu = 0 (log p =
/// -inf), theta = +inf (Poisson) and pi = 1 (ZINB with the probability).
template <class T, model_kind Kind, bool Grad, bool Want, bool SmallInt>
CELLKIT_HD CELLKIT_LK_INLINE positive_result<T> positive_kernel(T x, T mu, T theta, T inv_theta, T stirlerr_theta,
                                                                T phi_theta, T p) noexcept {
  static_assert(Kind != model_kind::poisson, "the Poisson model keeps the scalar x > 0 path");
  positive_result<T> out{{T(0), T(0), T(0), T(0)}, T(0), false};
  const T inf = inf_v<T>();
  bool ok = (x > T(0)) & (x < inf) & (mu > T(0)) & (mu < inf) & (theta > T(0)) & (theta < inf);
  const T n = theta + x;
  const T inv_tm = T(1) / (theta + mu);
  const T w = (x - mu) * inv_tm;  // delta / theta
  const T delta = theta * w;
  const T inv_x = T(1) / x;
  const T n_tm = n * inv_tm;
  const T lw = log1pmx_select(w, n_tm);
  const T l2 = log1pmx_select(-delta * inv_x, (mu * inv_x) * n_tm);
  T log_prob = T(0.5) * flog(theta / (two_pi_v<T> * x * n)) +
               ((stirlerr_select(n) - stirlerr_theta) - stirlerr_select(x)) + (theta * lw + x * l2);
  T d_mu = T(0);
  T d_theta = T(0);
  if constexpr (Grad) {
    d_mu = delta / mu;
    if constexpr (Want && SmallInt) {
      // the exact sum of nb_positive, terms added from the largest i as there (k = x in 1..16)
      const T x_clamped = sel((x >= T(0)) & (x <= T(16)), x, T(0));  // (no out-of-range conversion)
      const int k = static_cast<int>(x_clamped);
      T e_sum = T(0);
      for (int i = 15; i >= 1; --i) {
        const T term = T(i) / (theta + T(i));
        e_sum += sel(i < k, term, T(0));
      }
      const T s = mu * inv_theta;
      const T inv_1ps = theta * inv_tm;
      const T log1p_s = flog1p_hint(s, T(1) + s, inv_1ps);
      d_theta = (x * s * inv_tm - e_sum * inv_theta) - log1p_minus_frac_select(s, log1p_s, inv_1ps);
    } else if constexpr (Want) {
      d_theta = sel(theta >= asymptotic_min_v<T>, phi_diff(theta, x), phi_select(n) - phi_theta) + lw;
    }
  }
  if constexpr (Kind == model_kind::zinb) {
    ok = ok & (p >= T(0)) & (p < T(1));
    const T pi1 = T(1) - p;
    const T inv_pi1 = T(1) / pi1;
    log_prob += flog1p_hint(-p, pi1, inv_pi1);
    if constexpr (Grad) out.r.d_pi = -inv_pi1;
    out.pi = p;
  } else if constexpr (Kind == model_kind::zinb_logits) {
    // the NB part only: the caller adds zinb_positive's logit terms (math::softplus, math::sigmoid)
    ok = ok & (p == p);
  }
  out.r.log_prob = log_prob;
  out.r.d_mu = d_mu;
  out.r.d_theta = d_theta;
  out.fallback = !ok;
  return out;
}

/// The careful x = 0 form where zero_kernel reports `fallback` (ZINB only).
template <class T, model_kind Kind, bool Grad>
CELLKIT_HD inline zinb_value_grad<T> zero_fallback(T mu, const nb_theta<T>& th, T p, bool want_theta) noexcept {
  if constexpr (has_pi_v<Kind>) {
    return zinb_zero_fallback<T, Grad, Kind == model_kind::zinb_logits>(nb_zero<T, Grad>(mu, th, want_theta), p);
  } else {
    (void)mu;
    (void)th;
    (void)p;
    (void)want_theta;
    return {T(0), T(0), T(0), T(0)};
  }
}

/// The x = 0 element: zero_kernel, replaced by zero_fallback where it asks.
template <class T, model_kind Kind, bool Grad>
CELLKIT_HD inline zero_result<T> zero_element(T mu, const nb_theta<T>& th, T p, bool want_theta) noexcept {
  zero_result<T> z = zero_kernel<T, Kind, Grad>(mu, th.theta, th.inv_theta, p, want_theta);
  if (z.fallback) z.r = zero_fallback<T, Kind, Grad>(mu, th, p, want_theta);
  return z;
}

/// The x > 0 element (NaN for invalid arguments): Poisson, NB, or ZINB (log(1 - pi) + log NB).
template <class T, model_kind Kind, bool Grad>
CELLKIT_HD inline zinb_value_grad<T> positive_element(T x, T mu, const nb_theta<T>& th, T p, bool want_theta) noexcept {
  const T nan = nan_v<T>();
  bool valid = x > T(0) && x < inf_v<T>() && mu >= T(0) && mu < inf_v<T>();
  if constexpr (Kind == model_kind::poisson) {
    (void)th;
    (void)p;
    (void)want_theta;
    if (!valid) return {nan, nan, T(0), T(0)};
    const poisson_value_grad<T> r = poisson_positive<T, Grad>(x, mu);
    return {r.log_prob, r.d_mu, T(0), T(0)};
  } else {
    valid = valid && th.valid;
    if constexpr (has_pi_v<Kind>) valid = valid && pi_valid<T, Kind == model_kind::zinb_logits>(p);
    if (!valid) return {nan, nan, nan, nan};
    const nb_value_grad<T> nb = nb_positive<T, Grad>(x, mu, th, want_theta);
    if constexpr (Kind == model_kind::nb) {
      (void)p;
      return {nb.log_prob, nb.d_mu, nb.d_theta, T(0)};
    } else {
      return zinb_positive<T, Grad, Kind == model_kind::zinb_logits>(nb, p);
    }
  }
}

/// Any element (x >= 0; NaN for invalid arguments): the function every functor and sweep calls.
template <class T, model_kind Kind, bool Grad>
CELLKIT_HD inline zinb_value_grad<T> element(T x, T mu, const nb_theta<T>& th, T p, bool want_theta) noexcept {
  if (x == T(0)) return zero_element<T, Kind, Grad>(mu, th, p, want_theta).r;
  return positive_element<T, Kind, Grad>(x, mu, th, p, want_theta);
}

template <class T, bool Grad>
CELLKIT_HD inline nb_value_grad<T> nb_element(T x, T mu, const nb_theta<T>& th, bool want_theta) noexcept {
  const zinb_value_grad<T> r = element<T, model_kind::nb, Grad>(x, mu, th, T(0), want_theta);
  return {r.log_prob, r.d_mu, r.d_theta};
}

template <class T, bool Grad, bool Logits>
CELLKIT_HD inline zinb_value_grad<T> zinb_element(T x, T mu, const nb_theta<T>& th, T p, bool want_theta) noexcept {
  return element < T, Logits ? model_kind::zinb_logits : model_kind::zinb, Grad > (x, mu, th, p, want_theta);
}

template <class T, bool Grad>
CELLKIT_HD inline poisson_value_grad<T> poisson_element(T x, T mu) noexcept {
  const zinb_value_grad<T> r = element<T, model_kind::poisson, Grad>(x, mu, nb_theta<T>{}, T(0), false);
  return {r.log_prob, r.d_mu};
}

}  // namespace detail
}  // namespace cellkit::likelihood
