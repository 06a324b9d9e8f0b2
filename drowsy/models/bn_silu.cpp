// BatchNorm (training mode, batch statistics) followed by SiLU, for channels_last CPU tensors, in
// fewer passes over memory and with less arithmetic than PyTorch's two ops. Built on first use by
// drowsy/models/fused.py.
//
// A channels_last (N, C, H, W) tensor is M = N*H*W rows of C contiguous values, C a multiple of 16.
// PyTorch runs batch_norm then silu: forward makes four passes (statistics, normalize, silu read and
// write), backward four (silu backward, then batch_norm backward's sums and result), computing the
// sigmoid in both silu passes. Here forward makes two: the statistics, then y = z * sigmoid(z) with
// z = w * (x - mean) * invstd + b, writing y and the sigmoid (kept for backward); backward makes two:
// dz = grad * s * (1 + z * (1 - s)) from the kept sigmoid s, written out with its sums, then the
// gradient at x over dz. No sigmoid is computed twice.
//
// Sums are taken per block of BLOCK rows in float, then added block by block in double, in a fixed
// order: the result does not depend on how many threads ran the blocks.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t BLOCK = 256;

// exp inlined, so that it vectorizes with the loop around it instead of calling libm once per vector:
// e^x = 2^t = 2^n * e^(f ln 2) with t = x log2(e), n = round(t), |f| <= 1/2, and e^y by its Taylor
// series to y^6 (relative error < 2e-7, about float's own rounding).
inline float exp_inline(float x) {
  const float t = std::min(std::max(x * 1.44269504f, -126.0f), 126.0f);
  const float n = std::floor(t + 0.5f);
  const float y = (t - n) * 0.693147181f;
  const float p = 1.0f + y * (1.0f + y * (0.5f + y * (1.0f / 6 + y * (1.0f / 24 + y * (1.0f / 120 + y * (1.0f / 720))))));
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float z) { return 1.0f / (1.0f + exp_inline(-z)); }

// Element access through float, written so that the compiler vectorizes it: c10::BFloat16's own
// conversions check for NaN and stay scalar. bfloat16 is the top half of a float32; stores round to
// nearest even, as PyTorch does for finite values.
inline float load(const float* p, int64_t i) { return p[i]; }
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline float load(const at::BFloat16* p, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline void store(at::BFloat16* p, int64_t i, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(bits >> 16);
}

// Channels go in chunks of LANES (C must be a multiple): a chunk is one fixed-width vector, and the
// sums of a chunk stay in registers over a block of rows. The forward pass and the backward's second
// pass compute a chunk into local arrays before storing it: the compiler then needs no per-row check
// that outputs overlap inputs (with it, the forward pass ran 1.7x slower; the backward's first pass,
// with its sums, ran 1.2-1.7x slower written that way).
constexpr int64_t LANES = 16;

// The work on one block of rows is compiled once, out of line: inlined into both of at::parallel_for's
// paths (serial, OpenMP) it could be vectorized differently there (-ffast-math lets the compiler
// reorder float math), and results would then depend on the thread count.
template <typename F>
[[gnu::noinline]] void sum_block(int64_t begin, int64_t end, int64_t channels, const F& accumulate, float* out) {
  for (int64_t c0 = 0; c0 < channels; c0 += LANES) {
    float first[LANES] = {}, second[LANES] = {};
    for (int64_t row = begin; row < end; ++row) accumulate(row, c0, first, second);
    std::memcpy(out + c0, first, sizeof first);
    std::memcpy(out + channels + c0, second, sizeof second);
  }
}

template <typename F>
[[gnu::noinline]] void run_block(int64_t begin, int64_t end, int64_t channels, const F& body) {
  for (int64_t row = begin; row < end; ++row)
    for (int64_t c0 = 0; c0 < channels; c0 += LANES) body(row, c0);
}

// Two sums per channel. accumulate(row, c0, first, second) adds channels c0..c0+LANES of one row
// into first[0..LANES) and second[0..LANES).
template <typename F>
std::vector<double> channel_sums(int64_t rows, int64_t channels, const F& accumulate) {
  const int64_t blocks = (rows + BLOCK - 1) / BLOCK;
  std::vector<float> partial(blocks * 2 * channels, 0.0f);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block)
      sum_block(block * BLOCK, std::min(rows, (block + 1) * BLOCK), channels, accumulate,
                partial.data() + block * 2 * channels);
  });
  std::vector<double> total(2 * channels, 0.0);
  for (int64_t block = 0; block < blocks; ++block)
    for (int64_t i = 0; i < 2 * channels; ++i) total[i] += partial[block * 2 * channels + i];
  return total;
}

// body(row, c0) for every row and chunk, blocks of rows split among threads
template <typename F>
void for_chunks(int64_t rows, int64_t channels, const F& body) {
  const int64_t blocks = (rows + BLOCK - 1) / BLOCK;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    run_block(begin * BLOCK, std::min(rows, end * BLOCK), channels, body);
  });
}

template <typename T>
std::vector<torch::Tensor> forward_impl(const torch::Tensor& x, const torch::Tensor& weight,
                                        const torch::Tensor& bias, torch::Tensor& running_mean,
                                        torch::Tensor& running_var, double momentum, double eps) {
  const int64_t channels = x.size(1);
  const int64_t rows = x.numel() / channels;
  const T* xp = x.data_ptr<T>();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  // shift by the first row before summing squares: no cancellation when |mean| >> std
  std::vector<float> shift(channels);
  for (int64_t c = 0; c < channels; ++c) shift[c] = load(xp, c);
  const float* k = shift.data();
  auto sums = channel_sums(rows, channels, [&](int64_t row, int64_t c0, float* s, float* ss) {
    const T* xr = xp + row * channels + c0;
    const float* kc = k + c0;
    for (int64_t i = 0; i < LANES; ++i) {
      const float v = load(xr, i) - kc[i];
      s[i] += v;
      ss[i] += v * v;
    }
  });
  auto options = weight.options();
  torch::Tensor mean = torch::empty({channels}, options);
  torch::Tensor invstd = torch::empty({channels}, options);
  float* mean_p = mean.data_ptr<float>();
  float* invstd_p = invstd.data_ptr<float>();
  float* running_mean_p = running_mean.data_ptr<float>();
  float* running_var_p = running_var.data_ptr<float>();
  const double unbiased = rows > 1 ? static_cast<double>(rows) / (rows - 1) : 1.0;
  std::vector<float> scale(channels), offset(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double m = sums[c] / rows;
    const double v = std::max(sums[channels + c] / rows - m * m, 0.0);
    const double is = 1.0 / std::sqrt(v + eps);
    mean_p[c] = static_cast<float>(m + k[c]);
    invstd_p[c] = static_cast<float>(is);
    // as nn.BatchNorm2d: running = (1 - momentum) * running + momentum * batch, with unbiased variance
    running_mean_p[c] = static_cast<float>((1 - momentum) * running_mean_p[c] + momentum * (m + k[c]));
    running_var_p[c] = static_cast<float>((1 - momentum) * running_var_p[c] + momentum * v * unbiased);
    scale[c] = static_cast<float>(w[c] * is);
    offset[c] = static_cast<float>(b[c] - (m + k[c]) * w[c] * is);
  }
  torch::Tensor y = torch::empty_like(x);
  torch::Tensor gate = torch::empty_like(x);  // sigmoid(z), kept for the backward pass
  T* yp = y.data_ptr<T>();
  T* sp = gate.data_ptr<T>();
  const float* sc = scale.data();
  const float* of = offset.data();
  for_chunks(rows, channels, [&](int64_t row, int64_t c0) {
    const T* xr = xp + row * channels + c0;
    T* yr = yp + row * channels + c0;
    T* sr = sp + row * channels + c0;
    float z[LANES], s[LANES];
    for (int64_t i = 0; i < LANES; ++i) z[i] = load(xr, i) * sc[c0 + i] + of[c0 + i];
    for (int64_t i = 0; i < LANES; ++i) s[i] = sigmoid(z[i]);
    for (int64_t i = 0; i < LANES; ++i) store(yr, i, z[i] * s[i]);
    for (int64_t i = 0; i < LANES; ++i) store(sr, i, s[i]);
  });
  return {y, gate, mean, invstd};
}

template <typename T>
std::vector<torch::Tensor> backward_impl(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& gate,
                                         const torch::Tensor& weight, const torch::Tensor& bias,
                                         const torch::Tensor& mean, const torch::Tensor& invstd) {
  const int64_t channels = x.size(1);
  const int64_t rows = x.numel() / channels;
  const T* xp = x.data_ptr<T>();
  const T* gp = grad.data_ptr<T>();
  const T* sp = gate.data_ptr<T>();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  const float* mu = mean.data_ptr<float>();
  const float* is = invstd.data_ptr<float>();
  // Pass 1: dz, the gradient at the SiLU input z = w * xhat + b with xhat = (x - mean) * invstd,
  // written into grad_x, and its sums. Pass 2 turns dz into the gradient at x in place.
  torch::Tensor grad_x = torch::empty_like(x);
  T* dp = grad_x.data_ptr<T>();
  auto sums = channel_sums(rows, channels, [&](int64_t row, int64_t c0, float* sum_dz, float* sum_dz_xhat) {
    const T* xr = xp + row * channels + c0;
    const T* gr = gp + row * channels + c0;
    const T* sr = sp + row * channels + c0;
    T* dr = dp + row * channels + c0;
    for (int64_t i = 0; i < LANES; ++i) {
      const int64_t c = c0 + i;
      const float xhat = (load(xr, i) - mu[c]) * is[c];
      const float z = xhat * w[c] + b[c];
      const float s = load(sr, i);
      const float dz = load(gr, i) * s * (1.0f + z * (1.0f - s));
      store(dr, i, dz);
      sum_dz[i] += dz;
      sum_dz_xhat[i] += dz * xhat;
    }
  });
  auto options = weight.options();
  torch::Tensor grad_weight = torch::empty({channels}, options);
  torch::Tensor grad_bias = torch::empty({channels}, options);
  float* grad_weight_p = grad_weight.data_ptr<float>();
  float* grad_bias_p = grad_bias.data_ptr<float>();
  std::vector<float> mean_dz(channels), mean_dz_xhat(channels), gain(channels);
  for (int64_t c = 0; c < channels; ++c) {
    grad_bias_p[c] = static_cast<float>(sums[c]);
    grad_weight_p[c] = static_cast<float>(sums[channels + c]);
    mean_dz[c] = static_cast<float>(sums[c] / rows);
    mean_dz_xhat[c] = static_cast<float>(sums[channels + c] / rows);
    gain[c] = w[c] * is[c];
  }
  const float* md = mean_dz.data();
  const float* mdx = mean_dz_xhat.data();
  const float* g = gain.data();
  for_chunks(rows, channels, [&](int64_t row, int64_t c0) {
    const T* xr = xp + row * channels + c0;
    T* dr = dp + row * channels + c0;
    float dx[LANES];
    for (int64_t i = 0; i < LANES; ++i) {
      const int64_t c = c0 + i;
      const float xhat = (load(xr, i) - mu[c]) * is[c];
      dx[i] = g[c] * (load(dr, i) - md[c] - xhat * mdx[c]);
    }
    for (int64_t i = 0; i < LANES; ++i) store(dr, i, dx[i]);
  });
  return {grad_x, grad_weight, grad_bias};
}

void check(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "bn_silu: a 4-d CPU tensor expected");
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), "bn_silu: channels_last expected");
  TORCH_CHECK(x.size(1) % LANES == 0, "bn_silu: channels must be a multiple of ", LANES);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "bn_silu: float32 or bfloat16 expected");
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.is_contiguous(), "bn_silu: float32 weight expected");
}

std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor weight, torch::Tensor bias,
                                   torch::Tensor running_mean, torch::Tensor running_var, double momentum,
                                   double eps) {
  check(x, weight);
  TORCH_CHECK(running_mean.scalar_type() == at::kFloat && running_var.scalar_type() == at::kFloat &&
              running_mean.is_contiguous() && running_var.is_contiguous(), "bn_silu: float32 running statistics expected");
  if (x.scalar_type() == at::kBFloat16)
    return forward_impl<at::BFloat16>(x, weight, bias, running_mean, running_var, momentum, eps);
  return forward_impl<float>(x, weight, bias, running_mean, running_var, momentum, eps);
}

std::vector<torch::Tensor> backward(torch::Tensor grad, torch::Tensor x, torch::Tensor gate, torch::Tensor weight,
                                    torch::Tensor bias, torch::Tensor mean, torch::Tensor invstd) {
  check(x, weight);
  grad = grad.to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
  if (x.scalar_type() == at::kBFloat16)
    return backward_impl<at::BFloat16>(grad, x, gate, weight, bias, mean, invstd);
  return backward_impl<float>(grad, x, gate, weight, bias, mean, invstd);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "BatchNorm (batch statistics) + SiLU forward, updating the running statistics: y, mean, invstd");
  m.def("backward", &backward, "BatchNorm + SiLU backward: grad x, grad weight, grad bias");
}
