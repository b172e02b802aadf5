#pragma once
/// @file
/// First-order optimizers over a `parameter_list`: SGD (momentum, Nesterov), Adam (optionally
/// AMSGrad), AdamW and Adadelta (namespace `cellkit::nn`).
///
/// Each optimizer keeps its state (moment buffers) per list entry, created at the first `step` and
/// bound to the list's layout: a later step with a different number of entries or other shapes
/// throws `invalid_argument`. Updates follow PyTorch 1.13's single-tensor implementations operation
/// for operation (same rounding order), t the step count starting at 1, g the gradient:
///
/// - `sgd`:      g += wd p;  b = g (t = 1) else b = mu b + (1 - dampening) g;
///               d = nesterov ? g + mu b : b (d = g when mu = 0);  p -= lr d
/// - `adam`:     g += wd p (L2);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
///               (AMSGrad: vmax = max(vmax, v), used for v below)
///               p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// - `adamw`:    p *= 1 - lr wd (decoupled decay), then Adam's update without the L2 term
/// - `adadelta`: g += wd p;  s = rho s + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(s + eps) * g;
///               u = rho u + (1 - rho) d^2;  p -= lr d
///
/// Execution: host policies (serial, openmp); parameters are split into fixed chunks updated in
/// parallel, and every update is element-wise, so results are identical for every thread count.
/// Synchronous. Cost: O(total parameters) per step, 2-4 extra values of state per parameter
/// (SGD with momentum 1, Adam 2 (AMSGrad 3), Adadelta 2).
///
/// Errors: `invalid_argument` for lr < 0 or not finite, betas/rho outside [0, 1), eps <= 0,
/// momentum < 0, weight decay < 0, Nesterov without momentum or with dampening (PyTorch's rules).
///
/// ```cpp
/// cellkit::nn::adam<float> opt({.lr = 1e-3f});
/// for (...) { params.zero_grad(); /* forward, backward */ opt.step(cellkit::openmp{}, params); }
/// ```

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/detail/host_parallel.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

namespace cellkit::nn {

/// Options of `sgd` (PyTorch's defaults except lr, which has none there).
template <class T>
struct sgd_params {
  T lr = T(0.01);
  T momentum = T(0);
  T dampening = T(0);
  T weight_decay = T(0);
  bool nesterov = false;
};

/// Options of `adam` and `adamw` (weight_decay defaults: 0 for adam, 0.01 for adamw, as PyTorch).
template <class T>
struct adam_params {
  T lr = T(1e-3);
  T beta1 = T(0.9);
  T beta2 = T(0.999);
  T eps = T(1e-8);
  T weight_decay = T(0);
  bool amsgrad = false;
};

/// Options of `adadelta` (PyTorch's defaults).
template <class T>
struct adadelta_params {
  T lr = T(1);
  T rho = T(0.9);
  T eps = T(1e-6);
  T weight_decay = T(0);
};

namespace detail {

/// Elements per chunk of a parallel update; lists below parallel_elements_threshold run serially.
inline constexpr index_t update_chunk = 16384;

/// Calls f(entry, first, last) over fixed chunks of every entry of a list, in one parallel region
/// (one per entry would fork and join a team for each small bias vector).
template <class T, class Policy, class F>
void for_each_list_chunk(const Policy& policy, const parameter_list<T>& params, const F& f) {
  std::vector<std::pair<std::size_t, index_t>> chunks;  // (entry, first element)
  index_t total = 0;
  for (std::size_t e = 0; e < params.size(); ++e) {
    const index_t n = params[e].size();
    total += n;
    for (index_t lo = 0; lo < n; lo += update_chunk) chunks.emplace_back(e, lo);
  }
  auto body = [&](index_t c) {
    const auto [e, lo] = chunks[static_cast<std::size_t>(c)];
    f(e, lo, std::min(params[e].size(), lo + update_chunk));
  };
  const auto count = static_cast<index_t>(chunks.size());
  if (total < parallel_elements_threshold) {
    for (index_t c = 0; c < count; ++c) body(c);
  } else {
    cellkit::detail::parallel_for(policy, count, body);
  }
}

inline void check_unit_interval(const char* fn, const char* name, double v) {
  CELLKIT_EXPECTS(v >= 0.0 && v < 1.0, fn, name, "must lie in [0, 1), got " + std::to_string(v));
}
inline void check_non_negative(const char* fn, const char* name, double v) {
  CELLKIT_EXPECTS(std::isfinite(v) && v >= 0.0, fn, name, "must be finite and >= 0, got " + std::to_string(v));
}

/// Per-entry state buffers, bound to the layout of the first list stepped with.
template <class T>
class optimizer_state {
 public:
  /// Creates `buffers` zeroed buffers per entry on the first call; afterwards checks the layout.
  void bind(const parameter_list<T>& params, int buffers, const char* fn) {
    if (layout_.empty()) {
      CELLKIT_EXPECTS(!params.empty(), fn, "params", "the parameter list is empty");
      for (const auto& p : params) {
        layout_.push_back(p.size());
        for (int b = 0; b < buffers; ++b) state_.emplace_back(p.size());
      }
      buffers_ = buffers;
      return;
    }
    bool same = params.size() == layout_.size();
    for (std::size_t i = 0; same && i < params.size(); ++i) same = params[i].size() == layout_[i];
    CELLKIT_EXPECTS(same, fn, "params",
                    "the parameter list changed since the first step (optimizer state is per entry); "
                    "create a new optimizer for a new list");
  }
  T* buffer(std::size_t entry, int b) { return state_[entry * static_cast<std::size_t>(buffers_) + b].data(); }

 private:
  std::vector<index_t> layout_;
  std::vector<host_buffer<T>> state_;
  int buffers_ = 0;
};

}  // namespace detail

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight decay.
template <class T>
class sgd {
 public:
  explicit sgd(sgd_params<T> params = {}) : params_(params) { validate(); }

  /// One update of every parameter from its gradient.
  template <class Policy>
  void step(const Policy& policy, const parameter_list<T>& params) {
    static_assert(is_host_policy_v<Policy>, "cellkit::nn optimizers run on host policies");
    const auto& o = params_;
    const bool momentum = o.momentum != T(0);
    state_.bind(params, momentum ? 1 : 0, "sgd::step");
    const bool first = steps_ == 0;
    ++steps_;
    detail::for_each_list_chunk(policy, params, [&](std::size_t e, index_t lo, index_t hi) {
      T* p = params[e].value.data();
      const T* g = params[e].grad.data();
      T* buf = momentum ? state_.buffer(e, 0) : nullptr;
      for (index_t i = lo; i < hi; ++i) {
        T d = o.weight_decay != T(0) ? g[i] + o.weight_decay * p[i] : g[i];
        if (momentum) {
          buf[i] = first ? d : buf[i] * o.momentum + (T(1) - o.dampening) * d;
          d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
        }
        p[i] = p[i] - o.lr * d;
      }
    });
  }

  const sgd_params<T>& params() const { return params_; }
  void set_lr(T lr) {
    params_.lr = lr;
    validate();
  }
  std::int64_t steps() const { return steps_; }

 private:
  void validate() const {
    constexpr const char* fn = "sgd";
    detail::check_non_negative(fn, "lr", params_.lr);
    detail::check_non_negative(fn, "momentum", params_.momentum);
    detail::check_non_negative(fn, "weight_decay", params_.weight_decay);
    CELLKIT_EXPECTS(std::isfinite(params_.dampening), fn, "dampening", "must be finite");
    CELLKIT_EXPECTS(!params_.nesterov || (params_.momentum > T(0) && params_.dampening == T(0)), fn, "nesterov",
                    "Nesterov momentum requires momentum > 0 and dampening = 0");
  }
  sgd_params<T> params_;
  detail::optimizer_state<T> state_;
  std::int64_t steps_ = 0;
};

namespace detail {

/// The scalars of one Adam step.
template <class T>
struct adam_scalars {
  T beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, step_size, bias2_sqrt, decay;
  bool decoupled;
};

/// x = sqrt(x) on [0, n) with the IEEE square-root instruction on whole vectors. A loop calling
/// std::sqrt is not vectorised without -fno-math-errno, and Eigen's packet sqrt (EIGEN_FAST_MATH) is
/// a reciprocal-root approximation, not the correctly rounded root PyTorch computes.
template <class T>
void sqrt_in_place(T* x, index_t n) {
  index_t i = 0;
#if defined(__x86_64__) && !defined(__CUDACC__)
  if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
#elif defined(__AVX__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#else
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  } else if constexpr (std::is_same_v<T, double>) {
#if defined(__AVX512F__)
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _mm512_sqrt_pd(_mm512_loadu_pd(x + i)));
#elif defined(__AVX__)
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
#else
    for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#endif
  }
#endif
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

/// Adam without AMSGrad on elements [0, n), in L1-sized blocks of three loops without calls or
/// branches (moments; square roots; update), so each vectorises. The operations and their order are
/// the scalar formula's.
template <class T>
void adam_chunk(T* CELLKIT_RESTRICT p, const T* CELLKIT_RESTRICT g, T* CELLKIT_RESTRICT m, T* CELLKIT_RESTRICT v,
                index_t n, const adam_scalars<T>& s) {
  constexpr index_t block = 1024;
  alignas(64) T root[block];
  const T beta1 = s.beta1, beta2 = s.beta2, c1 = s.one_minus_beta1, c2 = s.one_minus_beta2;
  const T wd = s.weight_decay, decay = s.decay, step = s.step_size, bias2_sqrt = s.bias2_sqrt, eps = s.eps;
  const bool shrink = wd != T(0) && s.decoupled;
  const bool l2 = wd != T(0) && !s.decoupled;
  for (index_t lo = 0; lo < n; lo += block) {
    const index_t len = std::min(block, n - lo);
    T* CELLKIT_RESTRICT pb = p + lo;
    const T* CELLKIT_RESTRICT gb = g + lo;
    T* CELLKIT_RESTRICT mb = m + lo;
    T* CELLKIT_RESTRICT vb = v + lo;
    if (shrink) {
      for (index_t i = 0; i < len; ++i) pb[i] = pb[i] * decay;
    }
    if (l2) {
      for (index_t i = 0; i < len; ++i) {
        const T gi = gb[i] + wd * pb[i];
        mb[i] = mb[i] * beta1 + c1 * gi;
        vb[i] = vb[i] * beta2 + c2 * (gi * gi);
        root[i] = vb[i];
      }
    } else {
      for (index_t i = 0; i < len; ++i) {
        const T gi = gb[i];
        mb[i] = mb[i] * beta1 + c1 * gi;
        vb[i] = vb[i] * beta2 + c2 * (gi * gi);
        root[i] = vb[i];
      }
    }
    sqrt_in_place(root, len);
    for (index_t i = 0; i < len; ++i) pb[i] = pb[i] - step * (mb[i] / (root[i] / bias2_sqrt + eps));
  }
}

/// Adam / AdamW step shared by both classes.
template <class T, class Policy>
void adam_step(const Policy& policy, const parameter_list<T>& params, const adam_params<T>& o, bool decoupled,
               std::int64_t t, optimizer_state<T>& state) {
  // Scalars as PyTorch computes them: in double (Python floats), then used with T tensors.
  const double bias1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(t));
  const double bias2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(t));
  const adam_scalars<T> s{o.beta1,
                          o.beta2,
                          T(1) - o.beta1,
                          T(1) - o.beta2,
                          o.eps,
                          o.weight_decay,
                          static_cast<T>(static_cast<double>(o.lr) / bias1),
                          static_cast<T>(std::sqrt(bias2)),
                          static_cast<T>(1.0 - static_cast<double>(o.lr) * static_cast<double>(o.weight_decay)),
                          decoupled};
  for_each_list_chunk(policy, params, [&](std::size_t e, index_t lo, index_t hi) {
    T* p = params[e].value.data();
    const T* g = params[e].grad.data();
    T* m = state.buffer(e, 0);
    T* v = state.buffer(e, 1);
    if (!o.amsgrad) {
      adam_chunk(p + lo, g + lo, m + lo, v + lo, hi - lo, s);
      return;
    }
    T* vmax = state.buffer(e, 2);
    for (index_t i = lo; i < hi; ++i) {
      T gi = g[i];
      if (decoupled) {
        if (o.weight_decay != T(0)) p[i] = p[i] * s.decay;
      } else if (o.weight_decay != T(0)) {
        gi = gi + o.weight_decay * p[i];
      }
      m[i] = m[i] * o.beta1 + s.one_minus_beta1 * gi;
      v[i] = v[i] * o.beta2 + s.one_minus_beta2 * (gi * gi);
      vmax[i] = std::max(vmax[i], v[i]);
      const T denom = std::sqrt(vmax[i]) / s.bias2_sqrt + o.eps;
      p[i] = p[i] - s.step_size * (m[i] / denom);
    }
  });
}

template <class T>
void check_adam(const char* fn, const adam_params<T>& o) {
  check_non_negative(fn, "lr", o.lr);
  check_unit_interval(fn, "beta1", o.beta1);
  check_unit_interval(fn, "beta2", o.beta2);
  CELLKIT_EXPECTS(std::isfinite(o.eps) && o.eps > T(0), fn, "eps", "must be finite and > 0");
  check_non_negative(fn, "weight_decay", o.weight_decay);
}

}  // namespace detail

/// Adam (Kingma and Ba 2015), optionally AMSGrad. `Decoupled = false` adds the L2 weight decay to
/// the gradient (`adam`); `true` shrinks the parameters directly (`adamw`, Loshchilov and Hutter
/// 2019, default weight decay 0.01 as PyTorch).
template <class T, bool Decoupled>
class basic_adam {
 public:
  explicit basic_adam(adam_params<T> params = default_params()) : params_(params) {
    detail::check_adam(name(), params_);
  }

  template <class Policy>
  void step(const Policy& policy, const parameter_list<T>& params) {
    static_assert(is_host_policy_v<Policy>, "cellkit::nn optimizers run on host policies");
    state_.bind(params, params_.amsgrad ? 3 : 2, Decoupled ? "adamw::step" : "adam::step");
    detail::adam_step(policy, params, params_, Decoupled, ++steps_, state_);
  }

  const adam_params<T>& params() const { return params_; }
  void set_lr(T lr) {
    params_.lr = lr;
    detail::check_adam(name(), params_);
  }
  std::int64_t steps() const { return steps_; }

 private:
  static constexpr const char* name() { return Decoupled ? "adamw" : "adam"; }
  static adam_params<T> default_params() {
    adam_params<T> p;
    if (Decoupled) p.weight_decay = T(0.01);
    return p;
  }
  adam_params<T> params_;
  detail::optimizer_state<T> state_;
  std::int64_t steps_ = 0;
};

/// Adam with L2 weight decay added to the gradient.
template <class T>
using adam = basic_adam<T, false>;

/// AdamW: Adam with decoupled weight decay (default 0.01).
template <class T>
using adamw = basic_adam<T, true>;

/// Adadelta (Zeiler 2012), as scDeepCluster fine-tunes with (lr 1, rho 0.95).
template <class T>
class adadelta {
 public:
  explicit adadelta(adadelta_params<T> params = {}) : params_(params) { validate(); }

  template <class Policy>
  void step(const Policy& policy, const parameter_list<T>& params) {
    static_assert(is_host_policy_v<Policy>, "cellkit::nn optimizers run on host policies");
    state_.bind(params, 2, "adadelta::step");
    ++steps_;
    const auto& o = params_;
    detail::for_each_list_chunk(policy, params, [&](std::size_t e, index_t lo, index_t hi) {
      T* p = params[e].value.data();
      const T* g = params[e].grad.data();
      T* s = state_.buffer(e, 0);
      T* u = state_.buffer(e, 1);
      for (index_t i = lo; i < hi; ++i) {
        const T gi = o.weight_decay != T(0) ? g[i] + o.weight_decay * p[i] : g[i];
        s[i] = s[i] * o.rho + (T(1) - o.rho) * (gi * gi);
        const T std_dev = std::sqrt(s[i] + o.eps);
        const T delta = std::sqrt(u[i] + o.eps) / std_dev * gi;
        u[i] = u[i] * o.rho + (T(1) - o.rho) * (delta * delta);
        p[i] = p[i] - o.lr * delta;
      }
    });
  }

  const adadelta_params<T>& params() const { return params_; }
  void set_lr(T lr) {
    params_.lr = lr;
    validate();
  }
  std::int64_t steps() const { return steps_; }

 private:
  void validate() const {
    constexpr const char* fn = "adadelta";
    detail::check_non_negative(fn, "lr", params_.lr);
    CELLKIT_EXPECTS(params_.rho >= T(0) && params_.rho <= T(1), fn, "rho", "must lie in [0, 1]");
    CELLKIT_EXPECTS(std::isfinite(params_.eps) && params_.eps > T(0), fn, "eps", "must be finite and > 0");
    detail::check_non_negative(fn, "weight_decay", params_.weight_decay);
  }
  adadelta_params<T> params_;
  detail::optimizer_state<T> state_;
  std::int64_t steps_ = 0;
};

}  // namespace cellkit::nn
