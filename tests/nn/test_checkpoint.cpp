#include <cellkit/io/file_error.hpp>
#include <cellkit/nn/checkpoint.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

namespace {
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("cellkit_test_" + name)).string();
}
}  // namespace

TEST_CASE("save_parameters / load_parameters round-trip and reject mismatched or damaged files") {
  std::vector<float> w{1, 2, 3, 4, 5, 6}, b{-1, 0.5}, gw(6), gb(2);
  nn::parameter_list<float> params;
  params.add("layer.weight", matrix_view<float>(w.data(), 3, 2), matrix_view<float>(gw.data(), 3, 2));
  params.add("layer.bias", vector_view<float>(b.data(), 2), vector_view<float>(gb.data(), 2));
  const std::string path = temp_path("params.ckpt");
  nn::save_parameters(path, params);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  const auto saved_w = w;
  w.assign(6, 0.0f);
  b.assign(2, 0.0f);
  nn::load_parameters(path, params);
  CHECK(w == saved_w);
  CHECK(b == std::vector<float>{-1, 0.5});

  SUBCASE("another layout") {
    std::vector<float> w2(6), g2(6);
    nn::parameter_list<float> other;
    other.add("layer.weight", matrix_view<float>(w2.data(), 2, 3), matrix_view<float>(g2.data(), 2, 3));
    other.add("layer.bias", vector_view<float>(b.data(), 2), vector_view<float>(gb.data(), 2));
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, other), doctest::Contains("is 3 x 2 in the file but 2 x 3"),
                         io::file_error);
    CHECK(w2 == std::vector<float>(6, 0.0f));
    nn::parameter_list<float> renamed;
    renamed.add("enc.weight", matrix_view<float>(w2.data(), 3, 2), matrix_view<float>(g2.data(), 3, 2));
    renamed.add("layer.bias", vector_view<float>(b.data(), 2), vector_view<float>(gb.data(), 2));
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, renamed), doctest::Contains("expects 'enc.weight'"), io::file_error);
    std::vector<double> d(6), dg(6);
    nn::parameter_list<double> wide;
    wide.add("layer.weight", matrix_view<double>(d.data(), 3, 2), matrix_view<double>(dg.data(), 3, 2));
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, wide), doctest::Contains("float32"), io::file_error);
  }
  SUBCASE("a flipped byte fails the checksum and leaves the parameters alone") {
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(60);
      f.put('\x7f');
    }
    w.assign(6, 9.0f);
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, params), doctest::Contains("checksum"), io::file_error);
    CHECK(w == std::vector<float>(6, 9.0f));
  }
  SUBCASE("truncated and foreign files") {
    std::filesystem::resize_file(path, 30);
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, params), doctest::Contains("truncated"), io::file_error);
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << "not a checkpoint at all";
    }
    CHECK_THROWS_WITH_AS(nn::load_parameters(path, params), doctest::Contains("bad magic"), io::file_error);
    CHECK_THROWS_AS(nn::load_parameters(temp_path("missing.ckpt"), params), io::file_error);
  }
  SUBCASE("an unwritable destination is an error, not a silent loss") {
    CHECK_THROWS_AS(nn::save_parameters("/nonexistent-dir/params.ckpt", params), io::file_error);
  }
  std::remove(path.c_str());
}
