// Finding image/mask pairs on disk, and named splits.
#include "airm/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>

#include "airm/error.hpp"

namespace airm {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Extension without the dot, lower case.
std::string ext_of(const fs::path& p) {
  std::string e = p.extension().string();
  if (!e.empty() && e[0] == '.') e.erase(0, 1);
  return lower(e);
}

const std::vector<std::string> kImageExts = {"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"};
const std::vector<std::string> kMaskExts = {"png", "bmp", "tif", "tiff"};

// Position of `e` in `list`, or -1.
int rank_in(const std::vector<std::string>& list, const std::string& e) {
  const auto it = std::find(list.begin(), list.end(), e);
  return it == list.end() ? -1 : static_cast<int>(it - list.begin());
}

bool is_image_file(const fs::path& p) { return rank_in(kImageExts, ext_of(p)) >= 0; }
bool is_hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Non-hidden regular files (symlinks followed) directly in `dir`, sorted.
std::vector<fs::path> list_files(const fs::path& dir) {
  std::vector<fs::path> out;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (is_hidden(e.path())) continue;
      std::error_code ec;
      if (fs::is_regular_file(e.path(), ec)) out.push_back(e.path());
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(dir.string(), std::string("cannot list folder: ") + e.code().message());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> list_subdirs(const fs::path& dir) {
  std::vector<fs::path> out;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (is_hidden(e.path())) continue;
      if (is_dir(e.path())) out.push_back(e.path());
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(dir.string(), std::string("cannot list folder: ") + e.code().message());
  }
  std::sort(out.begin(), out.end());
  return out;
}

enum class Layout { kNone, kFolders, kBig };

// BIG role of a file name stem: "_im", "_gt", "_seg" suffix, or empty.
std::string big_role(const std::string& stem) {
  for (const char* r : {"_im", "_gt", "_seg"}) {
    if (ends_with(stem, r)) return r;
  }
  return {};
}

Layout layout_of(const fs::path& dir) {
  for (const char* sub : {"images", "masks"}) {
    if (is_dir(dir / sub)) return Layout::kFolders;
  }
  for (const fs::path& f : list_files(dir)) {
    if (is_image_file(f) && !big_role(f.stem().string()).empty()) return Layout::kBig;
  }
  return Layout::kNone;
}

// Files of one role, by stem. A stem met twice keeps the file whose
// extension comes first in `exts` (then the first by name); the others go to
// `unmatched`.
class Role {
 public:
  explicit Role(const std::vector<std::string>* exts) : exts_(exts) {}

  void add(const std::string& stem, const fs::path& file, std::vector<fs::path>& unmatched) {
    auto it = files_.find(stem);
    if (it == files_.end()) {
      files_.emplace(stem, file);
      return;
    }
    const auto key = [&](const fs::path& p) { return std::make_tuple(rank_in(*exts_, ext_of(p)), p); };
    if (key(file) < key(it->second)) {
      unmatched.push_back(it->second);
      it->second = file;
    } else {
      unmatched.push_back(file);
    }
  }

  const fs::path* find(const std::string& stem) const {
    const auto it = files_.find(stem);
    return it == files_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, fs::path>& files() const { return files_; }

 private:
  const std::vector<std::string>* exts_;
  std::map<std::string, fs::path> files_;
};

// Pairs images with gt; extras attach to a complete pair; everything else
// goes to `out.unmatched`.
void pair_up(const std::string& dataset, const Role& images, const Role& gts, const Role& coarse,
             const Role& ignore, Discovery& out) {
  std::set<std::string> paired;
  for (const auto& [stem, image] : images.files()) {
    const fs::path* gt = gts.find(stem);
    if (!gt) {
      out.unmatched.push_back(image);
      continue;
    }
    Sample s;
    s.dataset = dataset;
    s.name = stem;
    s.image = image;
    s.gt = *gt;
    if (const fs::path* c = coarse.find(stem)) s.coarse = *c;
    if (const fs::path* i = ignore.find(stem)) s.ignore = *i;
    out.samples.push_back(std::move(s));
    paired.insert(stem);
  }
  for (const Role* role : {&gts, &coarse, &ignore}) {
    for (const auto& [stem, file] : role->files()) {
      if (!paired.count(stem)) out.unmatched.push_back(file);
    }
  }
}

// Adds the files of `dir` with extensions in `exts` to `role`; other image
// files go to unmatched, non-image files are skipped.
void collect(const fs::path& dir, const std::vector<std::string>& exts, Role& role,
             std::vector<fs::path>& unmatched) {
  if (!is_dir(dir)) return;
  for (const fs::path& f : list_files(dir)) {
    if (rank_in(exts, ext_of(f)) >= 0) {
      role.add(f.stem().string(), f, unmatched);
    } else if (is_image_file(f)) {
      unmatched.push_back(f);
    }
  }
}

void scan_folders(const fs::path& dir, const std::string& dataset, Discovery& out) {
  Role images(&kImageExts), gts(&kMaskExts), coarse(&kMaskExts), ignore(&kMaskExts);
  collect(dir / "images", kImageExts, images, out.unmatched);
  collect(dir / "masks", kMaskExts, gts, out.unmatched);
  collect(dir / "coarse", kMaskExts, coarse, out.unmatched);
  collect(dir / "ignore", kMaskExts, ignore, out.unmatched);
  // Loose images beside the sub-folders belong to no pair.
  for (const fs::path& f : list_files(dir)) {
    if (is_image_file(f)) out.unmatched.push_back(f);
  }
  pair_up(dataset, images, gts, coarse, ignore, out);
}

void scan_big(const fs::path& dir, const std::string& dataset, Discovery& out) {
  Role images(&kImageExts), gts(&kMaskExts), seg(&kMaskExts), none(&kMaskExts);
  for (const fs::path& f : list_files(dir)) {
    if (!is_image_file(f)) continue;
    const std::string stem = f.stem().string();
    const std::string role = big_role(stem);
    const std::string name = stem.substr(0, stem.size() - role.size());
    const bool mask_ext = rank_in(kMaskExts, ext_of(f)) >= 0;
    if (role == "_im") {
      images.add(name, f, out.unmatched);
    } else if (role == "_gt" && mask_ext) {
      gts.add(name, f, out.unmatched);
    } else if (role == "_seg" && mask_ext) {
      seg.add(name, f, out.unmatched);
    } else {
      out.unmatched.push_back(f);
    }
  }
  pair_up(dataset, images, gts, seg, none, out);
}

void scan_dataset(const fs::path& dir, Layout layout, const std::string& dataset, Discovery& out) {
  if (layout == Layout::kFolders) {
    scan_folders(dir, dataset, out);
  } else {
    scan_big(dir, dataset, out);
  }
}

void sort_discovery(Discovery& d) {
  std::sort(d.samples.begin(), d.samples.end(), [](const Sample& a, const Sample& b) {
    return std::tie(a.dataset, a.name) < std::tie(b.dataset, b.name);
  });
  std::sort(d.unmatched.begin(), d.unmatched.end());
  d.unmatched.erase(std::unique(d.unmatched.begin(), d.unmatched.end()), d.unmatched.end());
}

// The folder's own name, also for "data/", "." or "x/..".
std::string folder_name(const fs::path& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void require_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(dir.string(), "no such folder");
  if (!fs::is_directory(dir, ec)) throw Error(dir.string(), "is not a folder");
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return {};
  const size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

// A cell without Markdown emphasis or code quotes.
std::string plain(const std::string& cell) {
  std::string out;
  for (char c : cell) {
    if (c != '`' && c != '*') out += c;
  }
  return trim(out);
}

bool is_token(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

// "a, b, c" -> {a, b, c}; false unless every item is a plain folder name.
bool parse_list(const std::string& text, std::vector<std::string>& items) {
  items.clear();
  std::stringstream ss(plain(text));
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!is_token(item)) return false;
    items.push_back(item);
  }
  return !items.empty();
}

std::vector<std::string> split_cells(const std::string& line) {
  std::string t = trim(line);
  if (!t.empty() && t.front() == '|') t.erase(0, 1);
  if (!t.empty() && t.back() == '|') t.pop_back();
  std::vector<std::string> cells;
  std::stringstream ss(t);
  std::string cell;
  while (std::getline(ss, cell, '|')) cells.push_back(trim(cell));
  return cells;
}

bool is_separator_row(const std::vector<std::string>& cells) {
  if (cells.empty()) return false;
  for (const std::string& c : cells) {
    if (c.empty() || c.find_first_not_of("-: ") != std::string::npos || c.find('-') == std::string::npos) {
      return false;
    }
  }
  return true;
}

void add_table(const std::vector<std::vector<std::string>>& rows, SplitTable& table) {
  for (size_t i = 0; i < rows.size(); ++i) {
    if (is_separator_row(rows[i])) continue;
    if (i + 1 < rows.size() && is_separator_row(rows[i + 1])) continue;  // header
    if (rows[i].size() < 2) continue;
    const std::string name = plain(rows[i][0]);
    std::vector<std::string> sets;
    if (is_token(name) && parse_list(rows[i][1], sets)) table[name] = sets;
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Discovery discover_dataset(const fs::path& dir) {
  require_dir(dir);
  Discovery out;
  const Layout own = layout_of(dir);
  if (own != Layout::kNone) {
    scan_dataset(dir, own, folder_name(dir), out);
  } else {
    bool any = false;
    for (const fs::path& sub : list_subdirs(dir)) {
      const Layout l = layout_of(sub);
      if (l == Layout::kNone) continue;
      any = true;
      scan_dataset(sub, l, sub.filename().string(), out);
    }
    if (!any) {
      throw Error(dir.string(),
                  "no dataset found (expected images/ + masks/, NAME_im + NAME_gt files, or "
                  "sub-folders holding those)");
    }
    for (const fs::path& f : list_files(dir)) {
      if (is_image_file(f)) out.unmatched.push_back(f);
    }
  }
  sort_discovery(out);
  return out;
}

SplitTable read_splits(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(file.string(), "cannot read the splits file");
  SplitTable table;
  std::vector<std::vector<std::string>> block;  // consecutive table rows
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (!t.empty() && t.front() == '|') {
      block.push_back(split_cells(t));
      continue;
    }
    add_table(block, table);
    block.clear();
    const size_t colon = t.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = plain(t.substr(0, colon));
    std::vector<std::string> sets;
    if (is_token(name) && parse_list(t.substr(colon + 1), sets)) table[name] = sets;
  }
  add_table(block, table);
  if (table.empty()) {
    throw Error(file.string(), "no splits found (expected a table '| split | set1, set2 | ...' or lines 'split: set1, set2')");
  }
  return table;
}

Discovery discover_split(const fs::path& root, const std::string& split, const fs::path& splits_file) {
  if (split.empty()) return discover_dataset(root);
  require_dir(root);
  const fs::path file = splits_file.empty() ? root / "SPLITS.md" : splits_file;
  const SplitTable table = read_splits(file);
  const auto it = table.find(split);
  if (it == table.end()) {
    std::vector<std::string> known;
    for (const auto& [name, sets] : table) known.push_back(name);
    throw Error(file.string(), "unknown split '" + split + "' (known: " + join(known) + ")");
  }
  Discovery out;
  std::set<std::string> done;
  for (const std::string& name : it->second) {
    if (!done.insert(name).second) continue;
    const fs::path dir = root / name;
    if (!is_dir(dir)) {
      throw Error(dir.string(), "dataset '" + name + "' of split '" + split + "' is missing");
    }
    const Layout l = layout_of(dir);
    if (l == Layout::kNone) {
      throw Error(dir.string(), "dataset '" + name + "' of split '" + split +
                                    "' holds no images/ + masks/ or NAME_im + NAME_gt files");
    }
    scan_dataset(dir, l, name, out);
  }
  sort_discovery(out);
  return out;
}

}  // namespace airm
