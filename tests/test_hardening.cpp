// Hardening: outputs through special files and links, interrupts, ports in use, unusable trees,
// special input files, bounds. Every test runs the real irene binary.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "test_util.hpp"

namespace {

using namespace irene;
using irene_test::fresh_dir;
using irene_test::run_irene;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// Temporary files irene would leave beside an output (".NAME.PID.tmp").
int temp_files_in(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().ends_with(".tmp")) ++n;
  return n;
}

// The reference output of `irene tree gpt2 --batch 1 --seq 8` (text).
std::string reference_tree_text() {
  const auto r = run_irene("tree gpt2 --batch 1 --seq 8");
  EXPECT_EQ(r.status, 0);
  return r.output;
}

TEST(OutputPaths, FifoIsWrittenThroughAndStaysAFifo) {
  const fs::path d = fresh_dir("hard");
  const fs::path fifo = d / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // The reader opens the FIFO and reads everything irene writes into it.
  auto reader = std::async(std::launch::async, [&] { return slurp(fifo); });
  const auto r = run_irene("tree gpt2 --batch 1 --seq 8 -o " + q(fifo));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string got = reader.get();
  EXPECT_EQ(got, reference_tree_text());
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // test -p
  EXPECT_EQ(temp_files_in(d), 0);
}

TEST(OutputPaths, SymlinkIsFollowedItsTargetWrittenAtomicallyKeepingItsMode) {
  const fs::path d = fresh_dir("hard");
  const fs::path target = d / "target.txt", link = d / "link.txt";
  irene_test::write_text(target, "old\n");
  ASSERT_EQ(::chmod(target.c_str(), 0640), 0);
  fs::create_symlink("target.txt", link);  // relative, as users make them
  const auto r = run_irene("tree gpt2 --batch 1 --seq 8 -o " + q(link));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_symlink(link));  // test -L
  EXPECT_EQ(fs::read_symlink(link), "target.txt");
  EXPECT_EQ(slurp(target), reference_tree_text());
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(temp_files_in(d), 0);
  // A dangling link: its target is created, the link stays.
  const fs::path dangling = d / "dangling.txt";
  fs::create_symlink(d / "sub" / "made.txt", dangling);
  fs::create_directory(d / "sub");
  ASSERT_EQ(run_irene("tree gpt2 --batch 1 --seq 8 -o " + q(dangling)).status, 0);
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_EQ(slurp(d / "sub" / "made.txt"), reference_tree_text());
}

TEST(OutputPaths, CharacterDevicesAndStdoutAreWrittenDirectly) {
  struct stat before {};
  ASSERT_EQ(::stat("/dev/null", &before), 0);
  const auto r = run_irene("tree gpt2 --batch 1 --seq 8 -o /dev/null");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "");
  struct stat after {};
  ASSERT_EQ(::stat("/dev/null", &after), 0);
  EXPECT_TRUE(S_ISCHR(after.st_mode));  // test -c: still the device, not a regular file
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_rdev, before.st_rdev);
  const auto out = run_irene("tree gpt2 --batch 1 --seq 8 -o /dev/stdout");
  ASSERT_EQ(out.status, 0);
  EXPECT_EQ(out.output, reference_tree_text());
}

TEST(OutputPaths, ExistingRegularFileKeepsItsModeAndAFolderIsRefused) {
  const fs::path d = fresh_dir("hard");
  const fs::path f = d / "out.txt";
  irene_test::write_text(f, "x");
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  ASSERT_EQ(run_irene("tree gpt2 --batch 1 --seq 8 -o " + q(f)).status, 0);
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(slurp(f), reference_tree_text());
  const auto r = run_irene("tree gpt2 --batch 1 --seq 8 -o " + q(d));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is a folder"), std::string::npos) << r.output;
  const auto missing = run_irene("tree gpt2 -o " + q(d / "no" / "such" / "x.txt"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("folder does not exist"), std::string::npos) << missing.output;
}

TEST(InputPaths, DevicesAndFoldersAreRefusedWithOneLine) {
  for (const char* cmd : {"tree /dev/zero", "predict /dev/zero", "evaluate /dev/zero /dev/zero",
                          "train /dev/zero -o /tmp/never.json"}) {
    const auto r = run_irene(cmd);
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.output.find("/dev/zero: is a device"), std::string::npos) << cmd << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  EXPECT_FALSE(fs::exists("/tmp/never.json"));
  const fs::path d = fresh_dir("hard");
  const auto r = run_irene("predict " + q(d) + " --predictor " + q(d));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is a folder"), std::string::npos) << r.output;
}

TEST(InputPaths, StandardInputAndFifosAreRead) {
  const fs::path d = fresh_dir("hard");
  ASSERT_EQ(run_irene("tree distilgpt2 --batch 1 --seq 8 --format jsonl -o " + q(d / "t.jsonl")).status, 0);
  const auto r = run_irene("predict - --format json < " + q(d / "t.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("predicted_energy"), std::string::npos);
}

// ---- bounds -----------------------------------------------------------------------------------

TEST(Bounds, SizesBeyondTheLimitsAreOneLineNamingKeyAndLimit) {
  const struct {
    const char* args;
    const char* fragment;
  } cases[] = {
      {"tree gpt2 --batch 200000000 --seq 8", "batch size must be an integer in 1..134217728"},
      {"tree gpt2 --set n_layer=5000", "'n_layer' must be a positive integer (at most 1024)"},
      {"predict gpt2 --set n_layer=100000", "at most 1024"},
      {"tree gpt2 --set n_embd=2000000", "'n_embd' must be a positive integer (at most 1048576)"},
      {"tree gpt2 --set n_embd=abc", "must be a positive integer"},
  };
  for (const auto& c : cases) {
    const auto r = run_irene(c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.args << ": " << r.output;
    EXPECT_EQ(r.output.rfind("irene: error: ", 0), 0u) << r.output;
  }
}

TEST(Bounds, TensorsBeyondSixtyFourBitsAreErrorsNotOverflow) {
  // Every size within its limit, but batch x heads x seq x seq beyond 2^62 elements.
  const ModelConfig c = parse_model_config(
      R"({"model_type":"gpt2","vocab_size":50,"n_embd":65536,"n_layer":1,"n_head":65536,"n_positions":16777216})", "big");
  const std::string e = irene_test::error_of([&] { build_tree(c, 134217728, 16777216); });
  EXPECT_NE(e.find("has more than"), std::string::npos) << e;
}

TEST(Bounds, ThousandLayersBuildQuickly) {
  ModelConfig c = load_model_config("gpt2");
  set_config_values(c, {{"n_layer", "1024"}});
  const Tree t = build_tree(c, 1, 8);
  EXPECT_EQ(t.nodes.size(), 1024u * 12 + 4);  // gpt2: 12 nodes a block (148 nodes at 12 layers)
  EXPECT_EQ(t.find_id("h.1023.attn:MatMul#1") > 0, true);
}

// Peak resident size (bytes) of `irene ARGS...` run directly (no shell), and its exit status.
std::pair<long, int> peak_rss_of_irene(const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>(IRENE_BINARY)};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(IRENE_BINARY, argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  return {ru.ru_maxrss * 1024L, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

#if defined(__SANITIZE_ADDRESS__)
#define IRENE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IRENE_TEST_ASAN 1
#endif
#endif

TEST(Bounds, ATreeAtTheNodeLimitIsReadInAtMostEightTimesItsSize) {
#ifdef IRENE_TEST_ASAN
  GTEST_SKIP() << "resident sizes under AddressSanitizer measure its shadow memory";
#else
  // The adversarial file for memory: one line, as many minimal nodes (about 81 bytes of JSON
  // each, against a few hundred bytes a node takes in memory) as one tree may hold.
  const fs::path dir = fresh_dir("rss");
  const fs::path file = dir / "min.jsonl";
  {
    std::ofstream out(file);
    out << R"({"model_name":"m","batch_size":1,"seq_len":1,"frontend_tree":{"scope":"","instance_type":"M",)"
        << R"("type":"model","flops":1,"mem_bytes":1,"child_nodes_obj":[)";
    for (int i = 0; i < 131000; ++i)
      out << (i ? "," : "") << R"({"scope":"l.)" << i << R"(","instance_type":"Linear","type":"ml","flops":1,"mem_bytes":1})";
    out << "]}}\n";
  }
  const auto size = static_cast<long>(fs::file_size(file));
  const auto [rss, status] = peak_rss_of_irene({"explain", file.string(), "-o", "/dev/null"});
  // Read whole (131,001 nodes), then refused for want of energies: exit 1, not a limit.
  EXPECT_EQ(status, 1);
  EXPECT_NE(run_irene("explain " + q(file) + " -o /dev/null").output.find("none of the 1 trees can be used"),
            std::string::npos);
  EXPECT_LE(rss, 8 * size) << "peak " << rss / 1e6 << " MB for a file of " << size / 1e6 << " MB";
#endif
}

// ---- unusable trees ---------------------------------------------------------------------------

TEST(UnusableTrees, SkippedWithANoticeOrFatalWithStrict) {
  const fs::path d = fresh_dir("hard");
  Tree good = build_tree(load_model_config("distilgpt2"), 1, 8);
  good.root().ground_truth_energy_j = 1.0;
  Tree bare = build_tree(load_model_config("distilgpt2"), 2, 8);  // no energy anywhere
  write_jsonl(d / "t.jsonl", {good, bare});
  auto r = run_irene("explain " + q(d / "t.jsonl") + " -o " + q(d / "e.txt"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("irene: skipping distilgpt2/2/8 of"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("neither a predicted nor a measured energy"), std::string::npos) << r.output;
  r = run_irene("explain --strict " + q(d / "t.jsonl") + " -o " + q(d / "s.txt"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("tree distilgpt2/2/8"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "s.txt"));
  r = run_irene("report " + q(d / "t.jsonl") + " -o " + q(d / "r.html"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("skipping distilgpt2/2/8"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(d / "r.html"));
  // train skips the tree without a measured root, the same way.
  r = run_irene("train " + q(d / "t.jsonl") + " -o " + q(d / "p.json") + " --strict");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("no measured energy at its root"), std::string::npos) << r.output;
}

TEST(UnusableTrees, PredictSkipsTreesLackingTheFeaturesItsPredictorReads) {
  const fs::path d = fresh_dir("hard");
  // A predictor that reads times_mean, trained on trees that have it.
  std::vector<Tree> measured;
  for (const char* m : {"distilgpt2", "gpt2"})
    for (int b : {1, 2})
      for (int s : {8, 16}) {
        Tree t = build_tree(load_model_config(m), b, s);
        for (auto& n : t.nodes) {
          n.resources["times_mean"] = 1e-6 * (1 + n.flops_mflop);
          n.ground_truth_energy_j = 1e-3 * (1 + n.flops_mflop);
        }
        measured.push_back(std::move(t));
      }
  write_jsonl(d / "m.jsonl", measured);
  ASSERT_EQ(run_irene("train " + q(d / "m.jsonl") + " -o " + q(d / "p.json") +
                      " --set feature_sets=model_specs,resource_utilization --set epochs=1")
                .status,
            0);
  Tree lacking = build_tree(load_model_config("distilgpt2"), 4, 8);  // no times_mean
  std::vector<Tree> mixed = {measured[0], lacking};
  write_jsonl(d / "mixed.jsonl", mixed);
  auto r = run_irene("predict " + q(d / "mixed.jsonl") + " --predictor " + q(d / "p.json") + " -o " + q(d / "o.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("skipping distilgpt2/4/8"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lacks the feature 'times_mean'"), std::string::npos) << r.output;
  EXPECT_EQ(read_jsonl(d / "o.jsonl").size(), 1u);
  r = run_irene("predict --strict " + q(d / "mixed.jsonl") + " --predictor " + q(d / "p.json") + " -o " + q(d / "s.jsonl"));
  EXPECT_EQ(r.status, 1);
  EXPECT_FALSE(fs::exists(d / "s.jsonl"));
  // A model built from its config cannot give times_mean: refused before anything runs.
  r = run_irene("predict distilgpt2 --predictor " + q(d / "p.json"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("reads measured resource features"), std::string::npos) << r.output;
}

// ---- interrupts -------------------------------------------------------------------------------

// irene started through /bin/sh (so that `trap '' INT` can make it start with SIGINT ignored),
// standard error captured in a file.
struct Running {
  pid_t pid = -1;
  fs::path err;
  int wait_status(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int st = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      const pid_t r = ::waitpid(pid, &st, WNOHANG);
      if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;  // did not end in time
  }
};

Running start(const std::string& args, const fs::path& err, bool ignore_sigint) {
  const std::string script = std::string(ignore_sigint ? "trap '' INT; " : "") + "exec '" + IRENE_BINARY + "' " +
                             args + " 2>'" + err.string() + "'";
  Running r;
  r.err = err;
  r.pid = ::fork();
  if (r.pid == 0) {
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return r;
}

// A trees file fed through a FIFO that stays open: predict writes its first tree into its
// temporary output, then waits for more input. Returns when the temporary file exists.
struct BlockedPredict {
  fs::path dir, fifo, out;
  int writer = -1;
  Running run;
  BlockedPredict(const fs::path& d, bool ignore_sigint) : dir(d), fifo(d / "in.fifo"), out(d / "out.jsonl") {
    EXPECT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    run = start("predict " + q(fifo) + " -o " + q(out), d / "err.txt", ignore_sigint);
    writer = ::open(fifo.c_str(), O_WRONLY);  // blocks until irene opens it
    const Tree t = build_tree(load_model_config("distilgpt2"), 1, 8);
    std::ostringstream line;
    write_tree_jsonl(line, t);
    const std::string s = line.str() + line.str();
    EXPECT_EQ(::write(writer, s.data(), s.size()), static_cast<ssize_t>(s.size()));
    for (int i = 0; i < 500 && temp_files_in(d) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(temp_files_in(d), 1) << "the temporary output should exist while predict waits";
  }
  ~BlockedPredict() {
    if (writer >= 0) ::close(writer);
  }
};

TEST(Interrupts, SigintRemovesTheTemporaryFileSaysSoAndExits130) {
  const fs::path d = fresh_dir("hard");
  BlockedPredict p(d, false);
  ASSERT_EQ(::kill(p.run.pid, SIGINT), 0);
  EXPECT_EQ(p.run.wait_status(5), 130);
  EXPECT_EQ(temp_files_in(d), 0);
  EXPECT_FALSE(fs::exists(p.out));
  EXPECT_NE(slurp(p.run.err).find("irene: interrupted: nothing written"), std::string::npos) << slurp(p.run.err);
}

TEST(Interrupts, SigtermCleanUpNeverDeletesAFilePlantedUnderTheTemporaryName) {
  const fs::path d = fresh_dir("hard");
  BlockedPredict p(d, false);
  fs::path tmp;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().filename().string().ends_with(".tmp")) tmp = e.path();
  ASSERT_FALSE(tmp.empty());
  // Someone swaps the temporary file for their own under the same name.
  fs::rename(tmp, d / "moved-away");
  irene_test::write_text(tmp, "planted\n");
  ASSERT_EQ(::kill(p.run.pid, SIGTERM), 0);
  EXPECT_EQ(p.run.wait_status(5), 143);
  EXPECT_EQ(slurp(tmp), "planted\n") << "the clean-up removed a file irene did not create";
  EXPECT_FALSE(fs::exists(p.out));
}

TEST(Interrupts, InTheBackgroundWithSigintIgnoredSigtermStillStopsCleanly) {
  const fs::path d = fresh_dir("hard");
  BlockedPredict p(d, true);
  ASSERT_EQ(::kill(p.run.pid, SIGINT), 0);  // ignored, as a background job's SIGINT is
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(::waitpid(p.run.pid, nullptr, WNOHANG), 0) << "SIGINT ignored: still running";
  ASSERT_EQ(::kill(p.run.pid, SIGTERM), 0);
  EXPECT_EQ(p.run.wait_status(5), 143);
  EXPECT_EQ(temp_files_in(d), 0);
  EXPECT_FALSE(fs::exists(p.out));
}

TEST(Interrupts, LongComputationsStopWithinASecond) {
  const fs::path d = fresh_dir("hard");
  std::vector<Tree> trees;
  for (const char* m : {"distilgpt2", "gpt2", "openai-gpt"})
    for (int s : {8, 16}) {
      Tree t = build_tree(load_model_config(m), 1, s);
      for (auto& n : t.nodes) n.ground_truth_energy_j = 1e-3 * (1 + n.flops_mflop);
      trees.push_back(std::move(t));
    }
  write_jsonl(d / "t.jsonl", trees);
  for (const char* cmd : {"crossval", "train"}) {
    for (bool ignore_int : {false, true}) {
      const std::string args = std::string(cmd) + " " + q(d / "t.jsonl") + " --set epochs=1000000 -o " +
                               q(d / (std::string(cmd) + ".out"));
      Running r = start(args, d / "err.txt", ignore_int);
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      ASSERT_EQ(::waitpid(r.pid, nullptr, WNOHANG), 0) << cmd << " ended early: " << slurp(r.err);
      const auto t0 = std::chrono::steady_clock::now();
      ::kill(r.pid, ignore_int ? SIGTERM : SIGINT);
      EXPECT_EQ(r.wait_status(5), ignore_int ? 143 : 130) << cmd;
      EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0) << cmd;
      EXPECT_NE(slurp(r.err).find("irene: interrupted"), std::string::npos) << cmd << ": " << slurp(r.err);
      EXPECT_FALSE(fs::exists(d / (std::string(cmd) + ".out")));
      EXPECT_EQ(temp_files_in(d), 0);
    }
  }
}

// ---- serve ------------------------------------------------------------------------------------

TEST(Serve, APortInUseIsRefusedWithOneLine) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(s, 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  const auto r = run_irene("serve --host 127.0.0.1 --port " + std::to_string(port));
  ::close(s);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("port " + std::to_string(port) + " in use"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

// Sends `request` to 127.0.0.1:port and returns everything answered until the server closes
// (a request that never ends is answered when the server cuts it off).
std::string http_exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return answer;
}

TEST(Serve, LoadSettingsComeFromTheCommandLine) {
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execl(IRENE_BINARY, IRENE_BINARY, "serve", "--port", "0", "--request-timeout", "0.5", "--max-batch", "4",
            "--max-body", "100", "--connections", "3", "--max-queued", "2", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string banner;
  char c;
  int lines = 0;
  while (lines < 2 && ::read(out[0], &c, 1) == 1) {
    banner += c;
    if (c == '\n') ++lines;
  }
  const auto at = banner.find("127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << banner;
  const int port = std::stoi(banner.substr(at + 10));
  EXPECT_NE(banner.find("3 connection threads, 2 more may wait; a request must arrive within 0.5 s"), std::string::npos)
      << banner;
  // --max-batch: a request over it is refused naming the bound.
  const std::string big =
      http_exchange(port, "GET /api/predict?model=gpt2&batch=5&seq=8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(big.rfind("HTTP/1.1 400", 0), 0u) << big.substr(0, 300);
  EXPECT_NE(big.find("4"), std::string::npos);
  const std::string ok =
      http_exchange(port, "GET /api/predict?model=gpt2&batch=4&seq=8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok.substr(0, 300);
  // --max-body: 200 bytes of body against 100.
  const std::string body(200, ' ');
  const std::string posted = http_exchange(
      port, "POST /api/predict?batch=1&seq=8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 200\r\n\r\n" + body);
  EXPECT_EQ(posted.rfind("HTTP/1.1 413", 0), 0u) << posted.substr(0, 300);
  // --request-timeout: headers that never end are cut off with 408 naming the deadline.
  const std::string slow = http_exchange(port, "GET /api/health HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(slow.rfind("HTTP/1.1 408", 0), 0u) << slow.substr(0, 300);
  EXPECT_NE(slow.find("within 0.5 s"), std::string::npos) << slow;
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out[0]);
}

TEST(Serve, LoadSettingsOutsideTheirRangeAreOneLine) {
  for (const char* args : {"serve --connections 0", "serve --max-queued -1", "serve --request-timeout 0",
                           "serve --request-timeout 4000", "serve --max-work 0", "serve --max-body 0",
                           "serve --max-batch 0", "serve --max-generate 2000000", "serve --connections x"}) {
    const auto r = run_irene(args);
    EXPECT_EQ(r.status, 1) << args << ": " << r.output;
    EXPECT_EQ(r.output.rfind("irene: error: ", 0), 0u) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << ": " << r.output;
  }
}

}  // namespace

namespace {

TEST(LightCore, ModelExecutionWithoutTheMeasuringHelperSaysHowToGetIt) {
  for (const char* cmd : {"profile gpt2 --batch 1 --seq 8 -o /tmp/never.jsonl",
                          "collect --models gpt2 --batch 1 --seq 8 -o /tmp/never.jsonl",
                          "predict gpt2 --profile"}) {
    const auto r = irene_test::run_irene(cmd, "IRENE_MEASURE=/nonexistent/irene-measure ");
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.output.find("executes models with libtorch, which this build does not include"), std::string::npos)
        << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("-DIRENE_WITH_TORCH=ON"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists("/tmp/never.jsonl"));
  const auto help = irene_test::run_irene("--help");
  EXPECT_NE(help.output.find("profile"), std::string::npos);
  EXPECT_NE(help.output.find("collect"), std::string::npos);
}

TEST(LightCore, TheIreneBinaryDoesNotLinkLibtorch) {
  std::ifstream maps;  // the binary's dynamic section, through ldd
  const auto r = irene_test::run_irene("version");
  ASSERT_EQ(r.status, 0);
  FILE* p = ::popen(("ldd '" + std::string(IRENE_BINARY) + "' 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  EXPECT_EQ(out.find("libtorch"), std::string::npos) << out;
  EXPECT_EQ(out.find("libc10"), std::string::npos) << out;
}

}  // namespace

TEST(Encoding, AConfigFileNameThatIsNotUtf8IsOneLineNamingTheFile) {
  const fs::path d = fresh_dir("hard");
  const fs::path bad = d / "cfg\xff.json";
  fs::copy_file(fs::path(IRENE_SOURCE_DIR) / "models" / "gpt2" / "config.json", bad);
  const auto r = run_irene("predict " + q(bad) + " --batch 1 --seq 8 --format json -o " + q(d / "out.json"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("irene: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cfg"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the file name is not valid UTF-8"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("type_error"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(d / "out.json"));
}
