#include "irene/predict/upper.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <cmath>
#include <numeric>
#include <random>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace irene::predict {

namespace {

// The two products of a training step over one tree's rows (row-major, `stride` a multiple of
// 16, zero-padded): s = X w and grad += X^T g. Vectorized with AVX2/FMA where the CPU has it
// (chosen at run time), else plain loops the compiler vectorizes as it can.
void rows_dot_generic(const float* x, int n, int stride, const float* w, float* out) {
  for (int i = 0; i < n; ++i) {
    const float* r = x + static_cast<long>(i) * stride;
    float acc[16] = {};
    for (int j = 0; j < stride; j += 16)
      for (int k = 0; k < 16; ++k) acc[k] += r[j + k] * w[j + k];
    float sum = 0;
    for (float a : acc) sum += a;
    out[i] = sum;
  }
}

void rows_axpy_generic(const float* x, int n, int stride, const float* g, float* grad) {
  for (int i = 0; i < n; ++i) {
    const float gi = g[i];
    if (gi == 0) continue;
    const float* r = x + static_cast<long>(i) * stride;
    for (int j = 0; j < stride; ++j) grad[j] += gi * r[j];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void rows_dot_avx2(const float* x, int n, int stride, const float* w,
                                                        float* out) {
  for (int i = 0; i < n; ++i) {
    const float* r = x + static_cast<long>(i) * stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int j = 0; j < stride; j += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(w + j), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j + 8), _mm256_loadu_ps(w + j + 8), a1);
    }
    a0 = _mm256_add_ps(a0, a1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    out[i] = _mm_cvtss_f32(h);
  }
}

__attribute__((target("avx2,fma"))) void rows_axpy_avx2(const float* x, int n, int stride, const float* g,
                                                         float* grad) {
  // Four rows at a time: one load and store of grad per four rows.
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256 g0 = _mm256_set1_ps(g[i]), g1 = _mm256_set1_ps(g[i + 1]), g2 = _mm256_set1_ps(g[i + 2]),
                 g3 = _mm256_set1_ps(g[i + 3]);
    const float* r0 = x + static_cast<long>(i) * stride;
    const float* r1 = r0 + stride;
    const float* r2 = r1 + stride;
    const float* r3 = r2 + stride;
    for (int j = 0; j < stride; j += 8) {
      __m256 acc = _mm256_loadu_ps(grad + j);
      acc = _mm256_fmadd_ps(g0, _mm256_loadu_ps(r0 + j), acc);
      acc = _mm256_fmadd_ps(g1, _mm256_loadu_ps(r1 + j), acc);
      acc = _mm256_fmadd_ps(g2, _mm256_loadu_ps(r2 + j), acc);
      acc = _mm256_fmadd_ps(g3, _mm256_loadu_ps(r3 + j), acc);
      _mm256_storeu_ps(grad + j, acc);
    }
  }
  for (; i < n; ++i) {
    const __m256 gi = _mm256_set1_ps(g[i]);
    const float* r = x + static_cast<long>(i) * stride;
    for (int j = 0; j < stride; j += 8)
      _mm256_storeu_ps(grad + j, _mm256_fmadd_ps(gi, _mm256_loadu_ps(r + j), _mm256_loadu_ps(grad + j)));
  }
}

// IRENE_PREDICT_SIMD=0 in the environment selects the portable kernels from the start.
std::atomic<bool> simd_allowed{[] {
  const char* e = std::getenv("IRENE_PREDICT_SIMD");
  return !(e && std::string(e) == "0");
}()};

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes && simd_allowed.load(std::memory_order_relaxed);
}
#else
std::atomic<bool> simd_allowed{true};
bool has_avx2() { return false; }
void rows_dot_avx2(const float* x, int n, int stride, const float* w, float* out) { rows_dot_generic(x, n, stride, w, out); }
void rows_axpy_avx2(const float* x, int n, int stride, const float* g, float* grad) { rows_axpy_generic(x, n, stride, g, grad); }
#endif

void rows_dot(const float* x, int n, int stride, const float* w, float* out) {
  if (has_avx2()) rows_dot_avx2(x, n, stride, w, out);
  else rows_dot_generic(x, n, stride, w, out);
}
void rows_axpy(const float* x, int n, int stride, const float* g, float* grad) {
  if (has_avx2()) rows_axpy_avx2(x, n, stride, g, grad);
  else rows_axpy_generic(x, n, stride, g, grad);
}

// Double precision (the finite-difference tests): plain Eigen.
void rows_dot(const double* x, int n, int stride, const double* w, double* out) {
  using M = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  Eigen::Map<Eigen::VectorXd>(out, n).noalias() = M(x, n, stride) * Eigen::Map<const Eigen::VectorXd>(w, stride);
}
void rows_axpy(const double* x, int n, int stride, const double* g, double* grad) {
  using M = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  Eigen::Map<Eigen::VectorXd>(grad, stride).noalias() += M(x, n, stride).transpose() * Eigen::Map<const Eigen::VectorXd>(g, n);
}

}  // namespace

bool set_training_simd(bool enabled) {
  simd_allowed = enabled;
  return has_avx2();
}

template <typename Scalar>
UpperProblem<Scalar>::UpperProblem(const FlatTrees& data, const std::vector<int>& train,
                                   const std::vector<double>& leaf_pred, const UpperModel& shape,
                                   const Config& config, std::vector<Scalar>* storage)
    : weighting_(shape.weighting),
      strategy_(shape.strategy),
      tau_(shape.tau),
      normalize_(config.normalize_loss_scale),
      root_children_exact_(config.root_children_exact),
      root_tau_(shape.root_tau > 0 ? shape.root_tau : shape.tau) {
  long rows = 0;
  int largest = 0;
  for (int t : train) {
    const int n = data.tree_begin[t + 1] - data.tree_begin[t];
    rows += n;
    largest = std::max(largest, n);
  }
  const int p = shape.poly.outputs();
  full_features_ = p;
  begin_.reserve(train.size() + 1);
  parent_.resize(rows);
  leaf_.resize(rows);
  leafval_.assign(rows, 0.0);
  gold_.assign(rows, kNaN);
  weight_.assign(rows, 0.0);
  std::vector<double> z(data.raw.cols());
  long r = 0;
  for (int t : train) {
    begin_.push_back(static_cast<int>(r));
    const int b = data.tree_begin[t], e = data.tree_begin[t + 1];
    for (int i = b; i < e; ++i, ++r) {
      parent_[r] = data.parent[i] < 0 ? -1 : data.parent[i] - b;
      leaf_[r] = data.leaf[i];
      if (data.leaf[i]) leafval_[r] = leaf_pred[i];
      if (data.has_gold(i)) gold_[r] = data.gold[i];
      if (!data.leaf[i] && data.has_gold(i)) {
        weight_[r] = data.type[i] == NodeType::model ? config.model_loss_weight : config.module_loss_weight;
        if (weight_[r] > 0) ++supervised_;
      }
    }
  }
  begin_.push_back(static_cast<int>(r));
  // Inputs that are 0 on every training row (after standardization) and the terms they zero.
  const int d = static_cast<int>(data.raw.cols());
  std::vector<double> probe(d, 0.0);
  for (int t : train)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      shape.scaler.apply(data.raw.row(i).data(), z.data());
      for (int j = 0; j < d; ++j)
        if (z[j] != 0) probe[j] = 1.0;
    }
  std::vector<double> term(p);
  shape.poly.expand(probe.data(), term.data());
  for (int k = 0; k < p; ++k)
    if (term[k] != 0) kept_.push_back(k);
  own_k_ = strategy_ == Strategy::unstructured ? 0 : static_cast<int>(shape.own_w.size());
  ownx_.assign(static_cast<std::size_t>(rows) * own_k_, 0.0);
  if (own_k_ > 0) {
    long rr = 0;
    for (int t : train)
      for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i, ++rr)
        if (!data.leaf[i])
          for (int k = 0; k < own_k_; ++k) ownx_[rr * own_k_ + k] = data.own(i, k) / shape.own_scale[k];
  }
  root_terms_ = static_cast<int>(shape.w_root.size());
  root_kept_ = static_cast<int>(std::count_if(kept_.begin(), kept_.end(), [&](int k) { return k < root_terms_; }));
  stride_ = (static_cast<int>(kept_.size()) + 15) / 16 * 16;
  // Feature rows (standardized, expanded, kept terms), once.
  std::vector<Scalar>& x = storage ? *storage : own_;
  if (x.size() < static_cast<std::size_t>(rows * stride_)) x.resize(rows * stride_);
  x_ = x.data();
  {
    long rr = 0;
    const int kept = static_cast<int>(kept_.size());
    for (int t : train) {
      for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i, ++rr) {
        shape.scaler.apply(data.raw.row(i).data(), z.data());
        shape.poly.expand(z.data(), term.data());
        Scalar* row = x.data() + rr * stride_;
        for (int k = 0; k < kept; ++k) row[k] = static_cast<Scalar>(term[kept_[k]]);
        for (int k = kept; k < stride_; ++k) row[k] = 0;
      }
    }
  }
  s_.resize(largest);
  g_.resize(largest);
  a_.resize(largest);
  da_.resize(largest);
  pred_.resize(largest);
  bar_.resize(largest);
  direct_.resize(largest);
}

template <typename Scalar>
double UpperProblem<Scalar>::tree_loss(int k, const Params& prm, Grads* grads) {
  const int r0 = begin_[k], n = begin_[k + 1] - begin_[k];
  const int* parent = parent_.data() + r0;
  const unsigned char* leaf = leaf_.data() + r0;
  const double* gold = gold_.data() + r0;
  const double* weight = weight_.data() + r0;
  const double* leafval = leafval_.data() + r0;
  const double* own = own_k_ > 0 ? ownx_.data() + static_cast<long>(r0) * own_k_ : nullptr;
  const bool unstructured = strategy_ == Strategy::unstructured;
  const bool stepwise = strategy_ == Strategy::stepwise;
  const bool own_root = root_kept_ > 0 && !unstructured && weighting_ != Weighting::exact_one && prm.w_root != nullptr;
  const bool has_own = own_k_ > 0 && prm.v != nullptr;
  const Scalar* x0 = x_ + static_cast<long>(r0) * stride_;
  const double b = prm.b;

  // Scores and weights alpha of every node (the root's is unused unless unstructured).
  if (weighting_ != Weighting::exact_one) rows_dot(x0, n, stride_, prm.w->data(), s_.data());
  for (int i = 0; i < n; ++i) {
    double s = weighting_ == Weighting::exact_one ? 0.0 : static_cast<double>(s_[i]) + b;
    if (own_root && parent[i] == 0) {
      s = prm.b_root;
      const Scalar* xi = x0 + static_cast<long>(i) * stride_;
      for (int j = 0; j < root_kept_; ++j) s += static_cast<double>(xi[j]) * prm.w_root[j];
    }
    switch (weighting_) {
      case Weighting::exact_one: a_[i] = 1; da_[i] = 0; break;
      case Weighting::free: a_[i] = s; da_[i] = 1; break;
      case Weighting::close_to_one: {
        const double th = std::tanh(s);
        const double tau = (parent[i] == 0 && !unstructured) ? root_tau_ : tau_;
        a_[i] = 1 + th / tau;
        da_[i] = (1 - th * th) / tau;
        break;
      }
    }
    if (root_children_exact_ && parent[i] == 0 && !unstructured) {
      a_[i] = 1;
      da_[i] = 0;
    }
    if (leaf[i]) {
      pred_[i] = leafval[i];
    } else if (has_own) {
      double o = 0;
      for (int q = 0; q < own_k_; ++q) o += prm.v[q] * own[static_cast<long>(i) * own_k_ + q];
      pred_[i] = o;
    } else {
      pred_[i] = 0.0;
    }
  }
  // Bottom-up sums: in pre-order every child comes after its parent.
  if (unstructured) {
    for (int i = 0; i < n; ++i)
      if (!leaf[i]) pred_[i] = a_[i];
  } else {
    for (int i = n - 1; i >= 1; --i) {
      const double v = (stepwise && std::isfinite(gold[i])) ? gold[i] : pred_[i];
      pred_[parent[i]] += a_[i] * v;
    }
  }
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    direct_[i] = 0;
    if (weight[i] <= 0) continue;
    double r = pred_[i] - gold[i];
    double dr = 1;
    if (normalize_) {
      r /= gold[i];
      dr = 1 / gold[i];
    }
    loss += weight[i] * r * r;
    direct_[i] = weight[i] * 2 * r * dr;
  }
  if (grads == nullptr || (weighting_ == Weighting::exact_one && !has_own)) return loss;

  // Top-down adjoints: bar[i] = dLoss/dpred[i].
  const bool alphas = weighting_ != Weighting::exact_one;
  double gb = 0;
  if (unstructured) {
    for (int i = 0; i < n; ++i) {
      const double g = leaf[i] ? 0.0 : direct_[i] * da_[i];
      g_[i] = static_cast<Scalar>(g);
      gb += g;
    }
  } else {
    bar_[0] = direct_[0];
    g_[0] = 0;
    for (int i = 1; i < n; ++i) {
      const int p = parent[i];
      const bool measured = stepwise && std::isfinite(gold[i]);
      const double v = measured ? gold[i] : pred_[i];
      bar_[i] = direct_[i] + (measured ? 0.0 : a_[i] * bar_[p]);
      const double g = bar_[p] * v * da_[i];
      if (own_root && p == 0) {
        g_[i] = 0;
        const Scalar* xi = x0 + static_cast<long>(i) * stride_;
        for (int j = 0; j < root_kept_; ++j) grads->w_root[j] += g * static_cast<double>(xi[j]);
        *grads->b_root += g;
        continue;
      }
      g_[i] = static_cast<Scalar>(g);
      gb += g;
    }
    if (has_own && grads->v)
      for (int i = 0; i < n; ++i)
        if (!leaf[i])
          for (int q = 0; q < own_k_; ++q) grads->v[q] += bar_[i] * own[static_cast<long>(i) * own_k_ + q];
  }
  if (alphas) {
    rows_axpy(x0, n, stride_, g_.data(), grads->w->data());
    *grads->b += gb;
  }
  return loss;
}

template <typename Scalar>
double UpperProblem<Scalar>::loss(const Eigen::VectorXd& theta, Eigen::VectorXd* grad) {
  const int p = full_features_;
  Vector w = Vector::Zero(stride());
  for (int k = 0; k < features(); ++k) w[k] = static_cast<Scalar>(theta[kept_[k]]);
  const int rt = root_kept_ > 0 ? root_terms_ : 0;
  std::vector<double> wr(root_kept_), gwr(root_kept_, 0.0);
  for (int k = 0; k < root_kept_; ++k) wr[k] = theta[p + 1 + kept_[k]];
  const int vo = p + 1 + (rt > 0 ? rt + 1 : 0);  // offset of the own weights
  std::vector<double> v(own_k_), gv(own_k_, 0.0);
  for (int q = 0; q < own_k_; ++q) v[q] = theta[vo + q];
  Params prm;
  prm.w = &w;
  prm.b = theta[p];
  prm.w_root = wr.data();
  prm.b_root = rt > 0 ? theta[p + 1 + rt] : 0.0;
  prm.v = v.data();
  Vector gw = Vector::Zero(stride());
  double gb = 0, gbr = 0;
  Grads g{&gw, &gb, gwr.data(), &gbr, gv.data()};
  double total = 0;
  for (int k = 0; k < trees(); ++k) total += tree_loss(k, prm, grad ? &g : nullptr);
  if (grad) {
    *grad = Eigen::VectorXd::Zero(vo + own_k_);
    for (int k = 0; k < features(); ++k) (*grad)[kept_[k]] = static_cast<double>(gw[k]);
    (*grad)[p] = gb;
    for (int k = 0; k < root_kept_; ++k) (*grad)[p + 1 + kept_[k]] = gwr[k];
    if (rt > 0) (*grad)[p + 1 + rt] = gbr;
    for (int q = 0; q < own_k_; ++q) (*grad)[vo + q] = gv[q];
  }
  return total;
}

template class UpperProblem<float>;
template class UpperProblem<double>;

void init_weights(UpperModel& model, std::uint64_t seed, std::uint64_t skip) {
  const int p = model.poly.outputs();
  model.w = Eigen::VectorXd::Zero(p);
  model.b = 0;
  if (model.weighting == Weighting::exact_one || p == 0) return;
  // torch.nn.Linear(p, 1) after torch.manual_seed(seed): kaiming_uniform_(a = sqrt(5)) for the
  // weights and uniform for the bias, both in +-1/sqrt(p); each value takes the low 24 bits of
  // one 32-bit output of the CPU generator (MT19937) as a float in [0, 1).
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  rng.discard(skip);
  const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p)));
  auto uniform = [&] {
    const float x = static_cast<float>(rng() & 0xFFFFFFu) * 0x1.0p-24f;
    return static_cast<double>(x * (bound - -bound) + -bound);
  };
  for (int i = 0; i < p; ++i) model.w[i] = uniform();
  model.b = uniform();
}

double train_upper(UpperModel& model, UpperProblem<float>& problem, const Config& config) {
  const int p = problem.features();
  const int stride = problem.stride();
  const int trees = problem.trees();
  const int ko = problem.own_features();
  if ((model.weighting == Weighting::exact_one && ko == 0) || config.training_strategy == Strategy::none ||
      config.epochs == 0 || trees == 0)
    return kNaN;
  constexpr double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  const double lr = config.learning_rate;
  // theta = [w (padded to stride, zeros beyond p, which never move: their gradient is 0); b]
  // followed, with root weights, by [w_root (stored root terms); b_root], then by the own
  // weights v (kept >= 0: projected after every step).
  const int rk = problem.root_features();
  const int ro = stride + 1;                      // offset of w_root
  const int vo = stride + 1 + (rk > 0 ? rk + 1 : 0);  // offset of v
  const int size = vo + ko;
  Eigen::VectorXd theta = Eigen::VectorXd::Zero(size), m = Eigen::VectorXd::Zero(size),
                  v = Eigen::VectorXd::Zero(size), grad(size);
  const auto& kept = problem.kept();
  for (int k = 0; k < p; ++k) theta[k] = model.w[kept[k]];
  theta[stride] = model.b;
  for (int k = 0; k < rk; ++k) theta[ro + k] = model.w_root[kept[k]];
  if (rk > 0) theta[ro + rk] = model.b_root;
  for (int q = 0; q < ko; ++q) theta[vo + q] = model.own_w[q];
  UpperProblem<float>::Vector wf = theta.head(stride).cast<float>(), gw(stride);
  std::vector<int> order(trees);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(config.seed ^ 0x9e3779b97f4a7c15ULL);
  double b1t = 1, b2t = 1;
  double last_epoch_loss = 0;
  const long total_steps = static_cast<long>(config.epochs) * trees;
  long t = 0;
  const int average_from = config.average_epochs > 0 ? std::max(0, config.epochs - config.average_epochs) : config.epochs;
  Eigen::VectorXd average = Eigen::VectorXd::Zero(size);
  long averaged = 0;
  for (int epoch = 0; epoch < config.epochs; ++epoch) {
    if (config.shuffle) std::shuffle(order.begin(), order.end(), rng);
    double epoch_loss = 0;
    for (int k : order) {
      gw.setZero();
      grad.tail(size - stride).setZero();
      UpperProblem<float>::Params prm;
      prm.w = &wf;
      prm.b = theta[stride];
      prm.w_root = rk > 0 ? theta.data() + ro : nullptr;
      prm.b_root = rk > 0 ? theta[ro + rk] : 0.0;
      prm.v = ko > 0 ? theta.data() + vo : nullptr;
      UpperProblem<float>::Grads g{&gw, grad.data() + stride, rk > 0 ? grad.data() + ro : nullptr,
                                   rk > 0 ? grad.data() + ro + rk : nullptr, ko > 0 ? grad.data() + vo : nullptr};
      epoch_loss += problem.tree_loss(k, prm, &g);
      grad.head(stride) = gw.cast<double>();
      if (config.l2 > 0) grad.head(p) += 2 * config.l2 * theta.head(p);
      b1t *= beta1;
      b2t *= beta2;
      m = beta1 * m + (1 - beta1) * grad;
      v = beta2 * v + (1 - beta2) * grad.cwiseProduct(grad);
      double rate = lr;
      const double progress = static_cast<double>(t++) / static_cast<double>(total_steps);
      if (config.lr_schedule == "linear") rate = lr * (1 - progress);
      else if (config.lr_schedule == "cosine") rate = lr * 0.5 * (1 + std::cos(3.141592653589793 * progress));
      const double step = rate / (1 - b1t);
      const double bc2 = std::sqrt(1 - b2t);
      theta.array() -= step * m.array() / (v.array().sqrt() / bc2 + eps);
      for (int q = 0; q < ko; ++q) theta[vo + q] = std::max(0.0, theta[vo + q]);
      wf = theta.head(stride).cast<float>();
      if (epoch >= average_from) {
        average += theta;
        ++averaged;
      }
    }
    last_epoch_loss = epoch_loss;
  }
  if (averaged > 0) theta = average / static_cast<double>(averaged);
  for (int k = 0; k < p; ++k) model.w[kept[k]] = theta[k];
  model.b = theta[stride];
  for (int k = 0; k < rk; ++k) model.w_root[kept[k]] = theta[ro + k];
  if (rk > 0) model.b_root = theta[ro + rk];
  for (int q = 0; q < ko; ++q) model.own_w[q] = theta[vo + q];
  return problem.supervised_nodes() > 0 ? last_epoch_loss / problem.supervised_nodes() : kNaN;
}

}  // namespace irene::predict
