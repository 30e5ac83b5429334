// Keeps the documentation honest: every C++ block in README.md and docs/**/*.md must be an exact
// excerpt of a program under examples/ (which CI compiles), so a doc example cannot rot.
//
// A block matches when its lines, with trailing whitespace removed, appear as consecutive whole
// lines of some examples/**/*.cpp file. Relative links between the documents are checked too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// The repository root, the parent of tests/ (GEN_DURABLE_TESTS_DIR, set by tests/CMakeLists.txt).
fs::path RepoRoot() { return fs::path(GEN_DURABLE_TESTS_DIR).parent_path(); }

std::string RightTrimmed(std::string line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
    line.pop_back();
  }
  return line;
}

std::vector<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(RightTrimmed(line));
  return lines;
}

// The documents whose C++ blocks are checked: README.md and every docs/**/*.md, sorted.
std::vector<fs::path> DocFiles(const fs::path& root) {
  std::vector<fs::path> files;
  if (fs::exists(root / "README.md")) files.push_back(root / "README.md");
  if (fs::is_directory(root / "docs")) {
    for (const auto& entry : fs::recursive_directory_iterator(root / "docs")) {
      if (entry.is_regular_file() && entry.path().extension() == ".md") {
        files.push_back(entry.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Example {
  fs::path path;
  std::vector<std::string> lines;
};

std::vector<Example> ExampleSources(const fs::path& root) {
  std::vector<Example> out;
  if (!fs::is_directory(root / "examples")) return out;
  for (const auto& entry : fs::recursive_directory_iterator(root / "examples")) {
    if (entry.is_regular_file() && entry.path().extension() == ".cpp") {
      out.push_back({entry.path(), ReadLines(entry.path())});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Example& a, const Example& b) { return a.path < b.path; });
  return out;
}

struct Block {
  fs::path doc;
  int line = 0;  // 1-based line of the opening fence
  std::vector<std::string> lines;
};

// True for the info string of a C++ fence ("cpp", "c++", "cxx", "C++ title=..."), so a block
// cannot dodge the check by spelling the language differently.
bool IsCppInfo(std::string info) {
  std::transform(info.begin(), info.end(), info.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string word = info.substr(0, info.find_first_of(" \t{"));
  return word == "cpp" || word == "c++" || word == "cxx" || word == "cc";
}

// Extracts the fenced C++ blocks of one Markdown file. A fence may be indented (inside a list);
// that indentation is removed from the block's lines. Other fenced blocks are skipped whole, so
// a "```cpp" shown inside a ```text block is not mistaken for a block.
std::vector<Block> CppBlocks(const fs::path& doc) {
  const std::vector<std::string> lines = ReadLines(doc);
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& open = lines[i];
    const std::size_t indent = open.find_first_not_of(' ');
    if (indent == std::string::npos) continue;
    const char fence_char = open[indent];
    if (fence_char != '`' && fence_char != '~') continue;
    std::size_t run = indent;
    while (run < open.size() && open[run] == fence_char) ++run;
    const std::size_t fence_len = run - indent;
    if (fence_len < 3) continue;
    const std::string fence(fence_len, fence_char);
    const bool cpp = IsCppInfo(open.substr(run));
    Block block{doc, static_cast<int>(i) + 1, {}};
    std::size_t j = i + 1;
    for (; j < lines.size(); ++j) {
      const std::string& l = lines[j];
      const std::size_t ind = l.find_first_not_of(' ');
      if (ind != std::string::npos && l.compare(ind, fence_len, fence) == 0 &&
          l.find_first_not_of(fence_char, ind) == std::string::npos) {
        break;  // the closing fence
      }
      std::size_t strip = 0;
      while (strip < indent && strip < l.size() && l[strip] == ' ') ++strip;
      block.lines.push_back(l.substr(strip));
    }
    if (cpp) blocks.push_back(std::move(block));
    i = j;  // continue after the closing fence (or at the end of an unclosed block)
  }
  return blocks;
}

bool Contains(const std::vector<std::string>& haystack, const std::vector<std::string>& needle) {
  if (needle.empty() || needle.size() > haystack.size()) return false;
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

std::string FirstNonBlank(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    if (l.find_first_not_of(' ') != std::string::npos) return l;
  }
  return "(empty block)";
}

TEST(DocsSnippets, ExtractsFencedCppBlocks) {
  const fs::path dir = fs::temp_directory_path() /
                       ("gen_durable_docs_snippets_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  const fs::path md = dir / "sample.md";
  {
    std::ofstream out(md);
    out << "# t\n```cpp\nint a = 1;  \n```\n\n```text\n```cpp\nnot code\n```\n\n"
           "- item\n\n  ```c++\n  int b = 2;\n  ```\n````sql\nSELECT 1;\n````\n";
  }
  const auto blocks = CppBlocks(md);
  fs::remove_all(dir);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].line, 2);
  EXPECT_EQ(blocks[0].lines, (std::vector<std::string>{"int a = 1;"}));
  EXPECT_EQ(blocks[1].lines, (std::vector<std::string>{"int b = 2;"}));
  EXPECT_TRUE(Contains({"x", "int a = 1;", "y"}, {"int a = 1;", "y"}));
  EXPECT_FALSE(Contains({"x", "int a = 1;", "y"}, {"int a = 1;", "z"}));
  EXPECT_FALSE(Contains({"x"}, {}));
}

TEST(DocsSnippets, EveryCppBlockIsAnExcerptOfAnExample) {
  const fs::path root = RepoRoot();
  ASSERT_TRUE(fs::exists(root / "README.md")) << "repository root not found at " << root;
  const std::vector<Example> examples = ExampleSources(root);
  ASSERT_FALSE(examples.empty()) << "no examples/*.cpp under " << root;

  int checked = 0;
  std::ostringstream failures;
  for (const fs::path& doc : DocFiles(root)) {
    for (const Block& block : CppBlocks(doc)) {
      ++checked;
      const bool found = std::any_of(examples.begin(), examples.end(), [&](const Example& e) {
        return Contains(e.lines, block.lines);
      });
      if (!found) {
        failures << "  " << fs::relative(doc, root).string() << ":" << block.line << ": "
                 << FirstNonBlank(block.lines) << "\n";
      }
    }
  }
  // Guards against passing vacuously (no docs found, or a broken extractor).
  EXPECT_GT(checked, 0) << "no ```cpp block found in README.md or docs/";
  EXPECT_TRUE(failures.str().empty())
      << "these ```cpp blocks are not consecutive lines of any examples/**/*.cpp file (copy "
         "them from an example, or change the example and the doc together):\n"
      << failures.str();
}

TEST(DocsSnippets, RelativeLinksResolve) {
  const fs::path root = RepoRoot();
  // [text](target) where target is not a URL or an in-page anchor.
  const std::regex link(R"(\]\(([^)\s#]+)(#[^)\s]*)?\))");
  std::ostringstream failures;
  for (const fs::path& doc : DocFiles(root)) {
    const std::vector<std::string> lines = ReadLines(doc);
    bool in_fence = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      const std::size_t ind = l.find_first_not_of(' ');
      if (ind != std::string::npos &&
          (l.compare(ind, 3, "```") == 0 || l.compare(ind, 3, "~~~") == 0)) {
        in_fence = !in_fence;
        continue;
      }
      if (in_fence) continue;
      for (auto it = std::sregex_iterator(l.begin(), l.end(), link); it != std::sregex_iterator();
           ++it) {
        const std::string target = (*it)[1].str();
        if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
        if (!fs::exists(doc.parent_path() / target)) {
          failures << "  " << fs::relative(doc, root).string() << ":" << i + 1 << ": " << target
                   << "\n";
        }
      }
    }
  }
  EXPECT_TRUE(failures.str().empty()) << "broken relative links:\n" << failures.str();
}

}  // namespace
