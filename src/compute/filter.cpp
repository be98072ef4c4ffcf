// Predicates: a recursive-descent parser to a small tree, and a column-at-a-time evaluator.
//
// Evaluation works on 64 rows at a time: every boolean node yields two bitmaps, `yes` (the row
// is true) and `no` (the row is false); a row in neither is unknown (SQL's null). Then
//   a and b: yes = yes_a & yes_b, no = no_a | no_b
//   a or b:  yes = yes_a | yes_b, no = no_a & no_b
//   not a:   yes and no swap
// which is SQL's three-valued logic. A comparison runs one tight loop over the two operands'
// values (a column, or a constant) and masks the result bits with their validity words.
// `x in (a, b)` is parsed as `x == a or x == b`, which is its SQL meaning for non-null constants.
//
// Comparisons: numbers with numbers (exact between integers of any width and sign; through
// double when a float is involved), strings with strings (bytes of UTF-8), bools with bools,
// date32 columns with date32 columns and 'YYYY-MM-DD' strings, timestamp columns with timestamp
// columns of the same unit and ISO 8601 strings. NaN equals NaN and is above every other
// number, as in the sort. A comparison with the constant null is unknown.
#include "deeprc/compute/filter.h"

#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/temporal.h"

namespace deeprc::compute {

enum class CompareOp : uint8_t { kEqual, kNotEqual, kLess, kLessEqual, kGreater, kGreaterEqual };

// A column name or a constant, with where it stands in the text.
struct Operand {
  enum class Kind : uint8_t { kColumn, kInteger, kFloat, kString, kBool, kNull };
  Kind kind = Kind::kNull;
  std::string text;  // the column name, or the string constant
  int64_t integer = 0;
  double real = 0;
  bool boolean = false;
  size_t position = 0;
};

struct Predicate::Node {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCompare, kIsNull, kTerm };
  Kind kind = Kind::kTerm;
  std::vector<std::unique_ptr<Node>> children;  // and, or: two or more; not: one
  CompareOp op = CompareOp::kEqual;
  Operand left;          // compare, is null, term (a bool column or constant)
  Operand right;         // compare
  bool negated = false;  // is not null
  size_t position = 0;
};

namespace {

using Node = Predicate::Node;

// ---------------------------------------------------------------------------------------------
// Parsing.

struct Token {
  enum class Kind : uint8_t { kEnd, kName, kQuotedName, kNumber, kString, kSymbol, kKeyword };
  Kind kind = Kind::kEnd;
  std::string text;  // names and strings unescaped; symbols and keywords (lower case) as is
  size_t position = 0;
};

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsKeyword(const std::string& lower) {
  return lower == "and" || lower == "or" || lower == "not" || lower == "is" || lower == "null" ||
         lower == "in" || lower == "true" || lower == "false";
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::unique_ptr<Node>> ParseAll() {
    DEEPRC_RETURN_NOT_OK(Advance());
    if (token_.kind == Token::Kind::kEnd) return Error(token_.position, "expected a condition");
    DEEPRC_ASSIGN_OR_RAISE(auto root, ParseOr());
    if (token_.kind != Token::Kind::kEnd) {
      return Error(token_.position, "expected 'and', 'or' or the end, found " + Describe(token_));
    }
    return root;
  }

 private:
  Status Error(size_t position, const std::string& what) const {
    return Status::Invalid("filter: {} at column {} in '{}'", what, position + 1, text_);
  }

  static std::string Describe(const Token& token) {
    switch (token.kind) {
      case Token::Kind::kEnd:
        return "the end";
      case Token::Kind::kString:
        return "'" + token.text + "'";
      case Token::Kind::kQuotedName:
        return "`" + token.text + "`";
      default:
        return "'" + token.text + "'";
    }
  }

  // Reads the next token into token_.
  Status Advance() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
    token_ = Token{};
    token_.position = at_;
    if (at_ >= text_.size()) return Status::OK();
    const char c = text_[at_];
    if (IsNameStart(c)) {
      size_t end = at_;
      while (end < text_.size() && IsNameChar(text_[end])) ++end;
      const std::string word(text_.substr(at_, end - at_));
      const std::string lower = Lower(word);
      if (IsKeyword(lower)) {
        token_.kind = Token::Kind::kKeyword;
        token_.text = lower;
      } else {
        token_.kind = Token::Kind::kName;
        token_.text = word;
      }
      at_ = end;
      return Status::OK();
    }
    if (c == '`' || c == '\'') {
      // `name` and 'string'; the quote is doubled to stand for itself.
      std::string value;
      size_t i = at_ + 1;
      while (true) {
        if (i >= text_.size()) {
          return Error(at_, c == '`' ? "unterminated `name`" : "unterminated 'string'");
        }
        if (text_[i] == c) {
          if (i + 1 < text_.size() && text_[i + 1] == c) {
            value += c;
            i += 2;
            continue;
          }
          break;
        }
        value += text_[i++];
      }
      token_.kind = c == '`' ? Token::Kind::kQuotedName : Token::Kind::kString;
      token_.text = std::move(value);
      at_ = i + 1;
      return Status::OK();
    }
    const bool sign =
        (c == '-' || c == '+') && at_ + 1 < text_.size() &&
        (std::isdigit(static_cast<unsigned char>(text_[at_ + 1])) || text_[at_ + 1] == '.');
    if (std::isdigit(static_cast<unsigned char>(c)) || sign ||
        (c == '.' && at_ + 1 < text_.size() &&
         std::isdigit(static_cast<unsigned char>(text_[at_ + 1])))) {
      size_t end = at_ + (sign ? 1 : 0);
      while (end < text_.size()) {
        const char d = text_[end];
        if (std::isalnum(static_cast<unsigned char>(d)) || d == '.' ||
            ((d == '-' || d == '+') && (text_[end - 1] == 'e' || text_[end - 1] == 'E'))) {
          ++end;
        } else {
          break;
        }
      }
      token_.kind = Token::Kind::kNumber;
      token_.text = std::string(text_.substr(at_, end - at_));
      at_ = end;
      return Status::OK();
    }
    for (std::string_view symbol : {"==", "!=", "<>", "<=", ">=", "<", ">", "=", "(", ")", ","}) {
      if (text_.substr(at_, symbol.size()) == symbol) {
        token_.kind = Token::Kind::kSymbol;
        token_.text = std::string(symbol);
        at_ += symbol.size();
        return Status::OK();
      }
    }
    return Error(at_, fmt::format("unexpected character '{}'", c));
  }

  bool IsKeywordToken(std::string_view keyword) const {
    return token_.kind == Token::Kind::kKeyword && token_.text == keyword;
  }
  bool IsSymbol(std::string_view symbol) const {
    return token_.kind == Token::Kind::kSymbol && token_.text == symbol;
  }

  Status Expect(std::string_view symbol) {
    if (!IsSymbol(symbol)) {
      return Error(token_.position,
                   fmt::format("expected '{}', found {}", symbol, Describe(token_)));
    }
    return Advance();
  }

  static std::unique_ptr<Node> Combine(Node::Kind kind, std::unique_ptr<Node> left,
                                       std::unique_ptr<Node> right) {
    if (left->kind == kind) {
      left->children.push_back(std::move(right));
      return left;
    }
    auto node = std::make_unique<Node>();
    node->kind = kind;
    node->position = left->position;
    node->children.push_back(std::move(left));
    node->children.push_back(std::move(right));
    return node;
  }

  Result<std::unique_ptr<Node>> ParseOr() {
    DEEPRC_ASSIGN_OR_RAISE(auto left, ParseAnd());
    while (IsKeywordToken("or")) {
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_ASSIGN_OR_RAISE(auto right, ParseAnd());
      left = Combine(Node::Kind::kOr, std::move(left), std::move(right));
    }
    return left;
  }

  Result<std::unique_ptr<Node>> ParseAnd() {
    DEEPRC_ASSIGN_OR_RAISE(auto left, ParseNot());
    while (IsKeywordToken("and")) {
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_ASSIGN_OR_RAISE(auto right, ParseNot());
      left = Combine(Node::Kind::kAnd, std::move(left), std::move(right));
    }
    return left;
  }

  static std::unique_ptr<Node> Negate(std::unique_ptr<Node> child, size_t position) {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kNot;
    node->position = position;
    node->children.push_back(std::move(child));
    return node;
  }

  Result<std::unique_ptr<Node>> ParseNot() {
    if (IsKeywordToken("not")) {
      const size_t position = token_.position;
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_ASSIGN_OR_RAISE(auto child, ParseNot());
      return Negate(std::move(child), position);
    }
    return ParsePredicate();
  }

  Result<Operand> ParseOperand() {
    Operand operand;
    operand.position = token_.position;
    switch (token_.kind) {
      case Token::Kind::kName:
      case Token::Kind::kQuotedName:
        operand.kind = Operand::Kind::kColumn;
        operand.text = token_.text;
        break;
      case Token::Kind::kString:
        operand.kind = Operand::Kind::kString;
        operand.text = token_.text;
        break;
      case Token::Kind::kNumber: {
        const std::string& text = token_.text;
        const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
        const char* end = text.data() + text.size();
        int64_t integer = 0;
        auto [ptr, error] = std::from_chars(begin, end, integer);
        if (error == std::errc() && ptr == end) {
          operand.kind = Operand::Kind::kInteger;
          operand.integer = integer;
          break;
        }
        double real = 0;
        auto [ptr2, error2] = std::from_chars(begin, end, real);
        if (error2 != std::errc() || ptr2 != end) {
          return Error(token_.position, "'" + text + "' is not a number");
        }
        operand.kind = Operand::Kind::kFloat;  // includes integers beyond int64
        operand.real = real;
        break;
      }
      case Token::Kind::kKeyword:
        if (token_.text == "true" || token_.text == "false") {
          operand.kind = Operand::Kind::kBool;
          operand.boolean = token_.text == "true";
          break;
        }
        if (token_.text == "null") {
          operand.kind = Operand::Kind::kNull;
          break;
        }
        [[fallthrough]];
      default:
        return Error(token_.position,
                     "expected a column, a constant or '(', found " + Describe(token_));
    }
    DEEPRC_RETURN_NOT_OK(Advance());
    return operand;
  }

  Result<std::unique_ptr<Node>> ParsePredicate() {
    if (IsSymbol("(")) {
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_ASSIGN_OR_RAISE(auto inner, ParseOr());
      DEEPRC_RETURN_NOT_OK(Expect(")"));
      return inner;
    }
    auto node = std::make_unique<Node>();
    node->position = token_.position;
    DEEPRC_ASSIGN_OR_RAISE(node->left, ParseOperand());
    if (token_.kind == Token::Kind::kSymbol && token_.text != "(" && token_.text != ")" &&
        token_.text != ",") {
      static constexpr std::pair<std::string_view, CompareOp> kOps[] = {
          {"==", CompareOp::kEqual},    {"=", CompareOp::kEqual},
          {"!=", CompareOp::kNotEqual}, {"<>", CompareOp::kNotEqual},
          {"<", CompareOp::kLess},      {"<=", CompareOp::kLessEqual},
          {">", CompareOp::kGreater},   {">=", CompareOp::kGreaterEqual}};
      for (const auto& [symbol, op] : kOps) {
        if (token_.text == symbol) node->op = op;
      }
      node->kind = Node::Kind::kCompare;
      node->position = token_.position;
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_ASSIGN_OR_RAISE(node->right, ParseOperand());
      return node;
    }
    if (IsKeywordToken("is")) {
      DEEPRC_RETURN_NOT_OK(Advance());
      if (IsKeywordToken("not")) {
        node->negated = true;
        DEEPRC_RETURN_NOT_OK(Advance());
      }
      if (!IsKeywordToken("null")) {
        return Error(token_.position, "expected 'null' after 'is', found " + Describe(token_));
      }
      DEEPRC_RETURN_NOT_OK(Advance());
      node->kind = Node::Kind::kIsNull;
      return node;
    }
    bool negated = false;
    size_t not_position = token_.position;
    if (IsKeywordToken("not")) {
      negated = true;
      DEEPRC_RETURN_NOT_OK(Advance());
      if (!IsKeywordToken("in")) {
        return Error(token_.position, "expected 'in' after 'not', found " + Describe(token_));
      }
    }
    if (IsKeywordToken("in")) {
      DEEPRC_RETURN_NOT_OK(Advance());
      DEEPRC_RETURN_NOT_OK(Expect("("));
      std::unique_ptr<Node> any;
      while (true) {
        auto equal = std::make_unique<Node>();
        equal->kind = Node::Kind::kCompare;
        equal->op = CompareOp::kEqual;
        equal->left = node->left;
        equal->position = token_.position;
        DEEPRC_ASSIGN_OR_RAISE(equal->right, ParseOperand());
        if (equal->right.kind == Operand::Kind::kColumn) {
          return Error(equal->right.position, "expected a constant in the 'in' list");
        }
        any = any ? Combine(Node::Kind::kOr, std::move(any), std::move(equal)) : std::move(equal);
        if (IsSymbol(",")) {
          DEEPRC_RETURN_NOT_OK(Advance());
          continue;
        }
        DEEPRC_RETURN_NOT_OK(Expect(")"));
        break;
      }
      return negated ? Negate(std::move(any), not_position) : std::move(any);
    }
    node->kind = Node::Kind::kTerm;
    return node;
  }

  std::string_view text_;
  size_t at_ = 0;
  Token token_;
};

// ---------------------------------------------------------------------------------------------
// Evaluation.

// Rows [64 w, 64 w + 64) are true where yes[w] has a bit, false where no[w] has one.
struct Truth {
  std::vector<uint64_t> yes;
  std::vector<uint64_t> no;
};

constexpr int64_t kParallelRows = 1 << 16;

int64_t WordCount(int64_t rows) { return (rows + 63) / 64; }

// Bits of the rows that exist in word w.
uint64_t RowMask(int64_t rows, int64_t w) {
  const int64_t left = rows - w * 64;
  return left >= 64 ? ~uint64_t{0} : ((uint64_t{1} << left) - 1);
}

// Evaluation context: the table, the text (for messages), the threads.
struct Context {
  const Table& table;
  const std::string& text;
  int threads;

  int64_t rows() const { return table.num_rows(); }

  Status Error(StatusCode code, size_t position, const std::string& what) const {
    return Status(code, fmt::format("filter: {} at column {} in '{}'", what, position + 1, text));
  }

  // Runs body(first_word, end_word) over the words, in parallel for long tables.
  void ForWords(const std::function<void(int64_t, int64_t)>& body) const {
    const int64_t words = WordCount(rows());
    const int parts = rows() >= kParallelRows ? threads : 1;
    ParallelRanges(words, parts, threads,
                   [&](int64_t, int64_t begin, int64_t end) { body(begin, end); });
  }
};

Truth MakeTruth(int64_t rows) {
  Truth truth;
  truth.yes.assign(static_cast<size_t>(WordCount(rows)), 0);
  truth.no.assign(static_cast<size_t>(WordCount(rows)), 0);
  return truth;
}

Truth Constant(const Context& context, std::optional<bool> value) {
  Truth truth = MakeTruth(context.rows());
  for (int64_t w = 0; w < WordCount(context.rows()); ++w) {
    const uint64_t mask = RowMask(context.rows(), w);
    if (value.has_value()) (*value ? truth.yes : truth.no)[w] = mask;
  }
  return truth;
}

// Valid rows of word w of a column (all rows when it has no nulls).
uint64_t ValidWord(const Column& column, int64_t w) {
  if (column.validity_bits() == nullptr) return ~uint64_t{0};
  return bitmap::LoadWord(column.validity_bits(), column.offset() + w * 64);
}

// truth = pred(row) on rows valid in every column of `columns`.
template <typename Pred>
Truth FillTruth(const Context& context, std::initializer_list<const Column*> columns, Pred pred) {
  const int64_t rows = context.rows();
  Truth truth = MakeTruth(rows);
  context.ForWords([&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t first = w * 64;
      const int count = static_cast<int>(std::min<int64_t>(64, rows - first));
      uint64_t bits = 0;
      for (int j = 0; j < count; ++j) bits |= static_cast<uint64_t>(pred(first + j)) << j;
      uint64_t valid = RowMask(rows, w);
      for (const Column* column : columns) valid &= ValidWord(*column, w);
      truth.yes[w] = bits & valid;
      truth.no[w] = ~bits & valid;
    }
  });
  return truth;
}

template <CompareOp op, typename A, typename B>
inline bool Compare(const A& a, const B& b) {
  if constexpr (op == CompareOp::kEqual) return a == b;
  if constexpr (op == CompareOp::kNotEqual) return a != b;
  if constexpr (op == CompareOp::kLess) return a < b;
  if constexpr (op == CompareOp::kLessEqual) return a <= b;
  if constexpr (op == CompareOp::kGreater) return a > b;
  if constexpr (op == CompareOp::kGreaterEqual) return a >= b;
}

// NaN equals NaN and is above every other number (the sort's order).
template <CompareOp op>
inline bool CompareDouble(double a, double b) {
  const bool a_nan = a != a;
  const bool b_nan = b != b;
  if (!(a_nan || b_nan)) return Compare<op>(a, b);
  return Compare<op>(static_cast<int>(a_nan), static_cast<int>(b_nan));
}

template <typename Body>
decltype(auto) WithOp(CompareOp op, Body&& body) {
  switch (op) {
    case CompareOp::kEqual:
      return body(std::integral_constant<CompareOp, CompareOp::kEqual>{});
    case CompareOp::kNotEqual:
      return body(std::integral_constant<CompareOp, CompareOp::kNotEqual>{});
    case CompareOp::kLess:
      return body(std::integral_constant<CompareOp, CompareOp::kLess>{});
    case CompareOp::kLessEqual:
      return body(std::integral_constant<CompareOp, CompareOp::kLessEqual>{});
    case CompareOp::kGreater:
      return body(std::integral_constant<CompareOp, CompareOp::kGreater>{});
    case CompareOp::kGreaterEqual:
      return body(std::integral_constant<CompareOp, CompareOp::kGreaterEqual>{});
  }
  return body(std::integral_constant<CompareOp, CompareOp::kEqual>{});
}

// `constant op value` is `value flipped(op) constant`.
CompareOp Flip(CompareOp op) {
  switch (op) {
    case CompareOp::kLess:
      return CompareOp::kGreater;
    case CompareOp::kLessEqual:
      return CompareOp::kGreaterEqual;
    case CompareOp::kGreater:
      return CompareOp::kLess;
    case CompareOp::kGreaterEqual:
      return CompareOp::kLessEqual;
    default:
      return op;
  }
}

bool IsNumberKind(Operand::Kind kind) {
  return kind == Operand::Kind::kInteger || kind == Operand::Kind::kFloat;
}

std::string DescribeOperand(const Operand& operand, const Column* column) {
  switch (operand.kind) {
    case Operand::Kind::kColumn:
      return fmt::format("column '{}' ({})", operand.text, column->type().ToString());
    case Operand::Kind::kInteger:
      return fmt::format("{} (an integer)", operand.integer);
    case Operand::Kind::kFloat:
      return fmt::format("{} (a number)", operand.real);
    case Operand::Kind::kString:
      return fmt::format("'{}' (a string)", operand.text);
    case Operand::Kind::kBool:
      return operand.boolean ? "true" : "false";
    case Operand::Kind::kNull:
      return "null";
  }
  return "?";
}

Result<const Column*> ResolveColumn(const Context& context, const Operand& operand) {
  const int index = context.table.schema().FieldIndex(operand.text);
  if (index < 0) {
    std::string known;
    for (const auto& name : context.table.schema().names()) {
      known += (known.empty() ? "" : ", ") + name;
    }
    return context.Error(StatusCode::kKeyError, operand.position,
                         fmt::format("no column named '{}' (columns: {})", operand.text, known));
  }
  return &context.table.column(index);
}

// column op constant, for a number column and a number constant.
template <typename T>
Truth CompareNumberWithConstant(const Context& context, const Column& column, CompareOp op,
                                const Operand& constant) {
  const T* values = column.Values<T>();
  if constexpr (std::is_integral_v<T>) {
    if (constant.kind == Operand::Kind::kInteger) {
      // Exact: a constant outside T's range decides every row; else compare in T.
      const int64_t c = constant.integer;
      const bool below =
          c < 0 ? (std::is_unsigned_v<T> || c < static_cast<int64_t>(std::numeric_limits<T>::min()))
                : false;
      const bool above =
          c >= 0 && static_cast<uint64_t>(c) > static_cast<uint64_t>(std::numeric_limits<T>::max());
      if (below || above) {
        // Every value is above (below) the constant.
        const int order = below ? 1 : -1;
        bool result = false;
        WithOp(op, [&](auto tag) { result = Compare<decltype(tag)::value>(order, 0); });
        return FillTruth(context, {&column}, [&](int64_t) { return result; });
      }
      const T typed = static_cast<T>(c);
      return WithOp(op, [&](auto tag) {
        return FillTruth(context, {&column}, [&](int64_t i) {
          return Compare<decltype(tag)::value>(values[i], typed);
        });
      });
    }
  }
  const double c = constant.kind == Operand::Kind::kInteger ? static_cast<double>(constant.integer)
                                                            : constant.real;
  return WithOp(op, [&](auto tag) {
    return FillTruth(context, {&column}, [&](int64_t i) {
      return CompareDouble<decltype(tag)::value>(static_cast<double>(values[i]), c);
    });
  });
}

// Values of a number column widened for comparing with another number column.
template <typename Wide>
void LoadWide(const Column& column, int64_t begin, int64_t count, Wide* out) {
  VisitType(column.type_id(), [&]<typename Tag>(Tag) {
    if constexpr (kIsNumberTag<Tag>) {
      const auto* values = column.Values<typename Tag::CType>() + begin;
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<Wide>(values[i]);
    }
  });
}

// column op column, both numbers: exact through 128-bit integers, or through double when a
// float is involved. Blocks of rows are widened into small arrays, then compared.
Truth CompareNumberColumns(const Context& context, const Column& a, CompareOp op, const Column& b) {
  const bool real = IsFloating(a.type_id()) || IsFloating(b.type_id());
  auto run = [&]<typename Wide>(Wide) {
    const int64_t rows = context.rows();
    Truth truth = MakeTruth(rows);
    context.ForWords([&](int64_t begin, int64_t end) {
      constexpr int64_t kBlockWords = 16;
      Wide left[kBlockWords * 64];
      Wide right[kBlockWords * 64];
      for (int64_t w0 = begin; w0 < end; w0 += kBlockWords) {
        const int64_t w1 = std::min(end, w0 + kBlockWords);
        const int64_t first = w0 * 64;
        const int64_t count = std::min(rows, w1 * 64) - first;
        LoadWide(a, first, count, left);
        LoadWide(b, first, count, right);
        WithOp(op, [&](auto tag) {
          for (int64_t w = w0; w < w1; ++w) {
            const int64_t base = (w - w0) * 64;
            const int n = static_cast<int>(std::min<int64_t>(64, count - base));
            uint64_t bits = 0;
            for (int j = 0; j < n; ++j) {
              bool r;
              if constexpr (std::is_floating_point_v<Wide>) {
                r = CompareDouble<decltype(tag)::value>(left[base + j], right[base + j]);
              } else {
                r = Compare<decltype(tag)::value>(left[base + j], right[base + j]);
              }
              bits |= static_cast<uint64_t>(r) << j;
            }
            const uint64_t valid = RowMask(rows, w) & ValidWord(a, w) & ValidWord(b, w);
            truth.yes[w] = bits & valid;
            truth.no[w] = ~bits & valid;
          }
        });
      }
    });
    return truth;
  };
  return real ? run(double{}) : run(__int128{});
}

// A string constant read as a date or timestamp for a temporal column.
Result<int64_t> TemporalConstant(const Context& context, const Column& column,
                                 const Operand& constant) {
  if (column.type_id() == TypeId::kDate32) {
    auto days = temporal::ParseDate(constant.text);
    if (!days) {
      return context.Error(StatusCode::kInvalid, constant.position,
                           fmt::format("'{}' is not a date (YYYY-MM-DD)", constant.text));
    }
    return *days;
  }
  auto value = temporal::ParseTimestamp(constant.text, column.type().unit);
  if (!value) {
    return context.Error(
        StatusCode::kInvalid, constant.position,
        fmt::format("'{}' is not a timestamp (YYYY-MM-DD[THH:MM:SS])", constant.text));
  }
  return *value;
}

Result<Truth> EvaluateCompare(const Context& context, const Node& node) {
  const Operand* left = &node.left;
  const Operand* right = &node.right;
  CompareOp op = node.op;
  const Column* left_column = nullptr;
  const Column* right_column = nullptr;
  if (left->kind == Operand::Kind::kColumn) {
    DEEPRC_ASSIGN_OR_RAISE(left_column, ResolveColumn(context, *left));
  }
  if (right->kind == Operand::Kind::kColumn) {
    DEEPRC_ASSIGN_OR_RAISE(right_column, ResolveColumn(context, *right));
  }
  if (left->kind == Operand::Kind::kNull || right->kind == Operand::Kind::kNull) {
    return Constant(context, std::nullopt);
  }
  // A column goes left.
  if (left_column == nullptr && right_column != nullptr) {
    std::swap(left, right);
    std::swap(left_column, right_column);
    op = Flip(op);
  }
  auto mismatch = [&] {
    return context.Error(
        StatusCode::kTypeError, node.position,
        fmt::format("cannot compare {} with {}", DescribeOperand(*left, left_column),
                    DescribeOperand(*right, right_column)));
  };
  if (left_column == nullptr) {
    // Two constants.
    int order = 0;
    if (IsNumberKind(left->kind) && IsNumberKind(right->kind)) {
      const double a =
          left->kind == Operand::Kind::kInteger ? static_cast<double>(left->integer) : left->real;
      const double b = right->kind == Operand::Kind::kInteger ? static_cast<double>(right->integer)
                                                              : right->real;
      if (left->kind == Operand::Kind::kInteger && right->kind == Operand::Kind::kInteger) {
        order = (left->integer > right->integer) - (left->integer < right->integer);
      } else {
        order = (a > b) - (a < b);
      }
    } else if (left->kind == Operand::Kind::kString && right->kind == Operand::Kind::kString) {
      const int c = left->text.compare(right->text);
      order = (c > 0) - (c < 0);
    } else if (left->kind == Operand::Kind::kBool && right->kind == Operand::Kind::kBool) {
      order = static_cast<int>(left->boolean) - static_cast<int>(right->boolean);
    } else {
      return mismatch();
    }
    bool result = false;
    WithOp(op, [&](auto tag) { result = Compare<decltype(tag)::value>(order, 0); });
    return Constant(context, result);
  }
  const Column& a = *left_column;
  const TypeId a_type = a.type_id();
  if (right_column == nullptr) {
    // Column and constant.
    if (IsNumeric(a_type) && IsNumberKind(right->kind)) {
      return VisitType(a_type, [&]<typename Tag>(Tag) -> Truth {
        if constexpr (kIsNumberTag<Tag>) {
          return CompareNumberWithConstant<typename Tag::CType>(context, a, op, *right);
        } else {
          return Truth{};  // unreachable: numeric types are number tags
        }
      });
    }
    if (a_type == TypeId::kString && right->kind == Operand::Kind::kString) {
      const std::string_view constant = right->text;
      return WithOp(op, [&](auto tag) {
        constexpr CompareOp kOp = decltype(tag)::value;
        return FillTruth(context, {&a}, [&](int64_t i) {
          if constexpr (kOp == CompareOp::kEqual || kOp == CompareOp::kNotEqual) {
            // Sizes first: most unequal strings differ there.
            return Compare<kOp>(a.GetString(i), constant);
          } else {
            return Compare<kOp>(a.GetString(i).compare(constant), 0);
          }
        });
      });
    }
    if (a_type == TypeId::kBool && right->kind == Operand::Kind::kBool) {
      const bool constant = right->boolean;
      const uint8_t* bits = a.bool_bits();
      const int64_t offset = a.offset();
      return WithOp(op, [&](auto tag) {
        return FillTruth(context, {&a}, [&](int64_t i) {
          return Compare<decltype(tag)::value>(bitmap::GetBit(bits, offset + i), constant);
        });
      });
    }
    if ((a_type == TypeId::kDate32 || a_type == TypeId::kTimestamp) &&
        right->kind == Operand::Kind::kString) {
      DEEPRC_ASSIGN_OR_RAISE(const int64_t constant, TemporalConstant(context, a, *right));
      Operand number;
      number.kind = Operand::Kind::kInteger;
      number.integer = constant;
      if (a_type == TypeId::kDate32)
        return CompareNumberWithConstant<int32_t>(context, a, op, number);
      return CompareNumberWithConstant<int64_t>(context, a, op, number);
    }
    return mismatch();
  }
  // Two columns.
  const Column& b = *right_column;
  const TypeId b_type = b.type_id();
  if (IsNumeric(a_type) && IsNumeric(b_type)) return CompareNumberColumns(context, a, op, b);
  if ((a_type == TypeId::kDate32 && b_type == TypeId::kDate32) ||
      (a_type == TypeId::kTimestamp && a.type() == b.type())) {
    return CompareNumberColumns(context, a, op, b);
  }
  if (a_type == TypeId::kString && b_type == TypeId::kString) {
    return WithOp(op, [&](auto tag) {
      return FillTruth(context, {&a, &b}, [&](int64_t i) {
        return Compare<decltype(tag)::value>(a.GetString(i).compare(b.GetString(i)), 0);
      });
    });
  }
  if (a_type == TypeId::kBool && b_type == TypeId::kBool) {
    return WithOp(op, [&](auto tag) {
      return FillTruth(context, {&a, &b}, [&](int64_t i) {
        return Compare<decltype(tag)::value>(a.GetBool(i), b.GetBool(i));
      });
    });
  }
  return mismatch();
}

Result<Truth> EvaluateNode(const Context& context, const Node& node) {
  switch (node.kind) {
    case Node::Kind::kAnd:
    case Node::Kind::kOr: {
      DEEPRC_ASSIGN_OR_RAISE(Truth result, EvaluateNode(context, *node.children[0]));
      const bool is_and = node.kind == Node::Kind::kAnd;
      for (size_t c = 1; c < node.children.size(); ++c) {
        DEEPRC_ASSIGN_OR_RAISE(Truth other, EvaluateNode(context, *node.children[c]));
        for (size_t w = 0; w < result.yes.size(); ++w) {
          if (is_and) {
            result.yes[w] &= other.yes[w];
            result.no[w] |= other.no[w];
          } else {
            result.yes[w] |= other.yes[w];
            result.no[w] &= other.no[w];
          }
        }
      }
      return result;
    }
    case Node::Kind::kNot: {
      DEEPRC_ASSIGN_OR_RAISE(Truth result, EvaluateNode(context, *node.children[0]));
      std::swap(result.yes, result.no);
      return result;
    }
    case Node::Kind::kCompare:
      return EvaluateCompare(context, node);
    case Node::Kind::kIsNull: {
      bool is_null = false;
      if (node.left.kind == Operand::Kind::kColumn) {
        DEEPRC_ASSIGN_OR_RAISE(const Column* column, ResolveColumn(context, node.left));
        Truth truth = MakeTruth(context.rows());
        for (int64_t w = 0; w < WordCount(context.rows()); ++w) {
          const uint64_t valid = ValidWord(*column, w) & RowMask(context.rows(), w);
          const uint64_t null = ~ValidWord(*column, w) & RowMask(context.rows(), w);
          truth.yes[w] = node.negated ? valid : null;
          truth.no[w] = node.negated ? null : valid;
        }
        return truth;
      }
      is_null = node.left.kind == Operand::Kind::kNull;
      return Constant(context, is_null != node.negated);
    }
    case Node::Kind::kTerm: {
      const Operand& operand = node.left;
      if (operand.kind == Operand::Kind::kBool) return Constant(context, operand.boolean);
      if (operand.kind == Operand::Kind::kNull) return Constant(context, std::nullopt);
      if (operand.kind == Operand::Kind::kColumn) {
        DEEPRC_ASSIGN_OR_RAISE(const Column* column, ResolveColumn(context, operand));
        if (column->type_id() == TypeId::kBool) {
          Truth truth = MakeTruth(context.rows());
          for (int64_t w = 0; w < WordCount(context.rows()); ++w) {
            const uint64_t valid = ValidWord(*column, w) & RowMask(context.rows(), w);
            const uint64_t bits = bitmap::LoadWord(column->bool_bits(), column->offset() + w * 64);
            truth.yes[w] = bits & valid;
            truth.no[w] = ~bits & valid;
          }
          return truth;
        }
        return context.Error(StatusCode::kTypeError, operand.position,
                             fmt::format("column '{}' is {}, not bool: compare it with something",
                                         operand.text, column->type().ToString()));
      }
      return context.Error(StatusCode::kTypeError, operand.position,
                           fmt::format("{} is not a condition", DescribeOperand(operand, nullptr)));
    }
  }
  return Status::Internal("filter: unknown node");
}

Result<Column> EvaluateToColumn(const Predicate::Node& root, const std::string& text,
                                const Table& table, int threads) {
  const Context context{table, text, threads <= 0 ? DefaultThreadCount() : threads};
  DEEPRC_ASSIGN_OR_RAISE(Truth truth, EvaluateNode(context, root));
  const int64_t rows = table.num_rows();
  const int64_t words = WordCount(rows);
  DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(std::max<int64_t>(words, 1) * 8));
  if (words > 0)
    std::memcpy(values->mutable_data(), truth.yes.data(), static_cast<size_t>(words) * 8);
  int64_t nulls = 0;
  for (int64_t w = 0; w < words; ++w) {
    nulls += std::popcount(~(truth.yes[w] | truth.no[w]) & RowMask(rows, w));
  }
  std::shared_ptr<Buffer> validity;
  if (nulls > 0) {
    DEEPRC_ASSIGN_OR_RAISE(validity, Buffer::Allocate(words * 8));
    auto* out = validity->mutable_data_as<uint64_t>();
    for (int64_t w = 0; w < words; ++w) out[w] = truth.yes[w] | truth.no[w];
  }
  return Column::Make(DataType::Bool(), rows, std::move(values), std::move(validity), nulls);
}

}  // namespace

Predicate::Predicate() = default;
Predicate::Predicate(Predicate&&) noexcept = default;
Predicate& Predicate::operator=(Predicate&&) noexcept = default;
Predicate::~Predicate() = default;

Result<Predicate> Predicate::Parse(std::string_view text) {
  Predicate predicate;
  predicate.text_ = std::string(text);
  Parser parser(predicate.text_);
  DEEPRC_ASSIGN_OR_RAISE(predicate.root_, parser.ParseAll());
  return predicate;
}

Result<Column> Predicate::Evaluate(const Table& table, int threads) const {
  return EvaluateToColumn(*root_, text_, table, threads);
}

const std::string& Predicate::text() const { return text_; }

Result<Table> Filter(const Table& table, const Predicate& predicate, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(Column mask, predicate.Evaluate(table, threads));
  return FilterByMask(table, mask, threads);
}

Result<Table> Filter(const Table& table, std::string_view predicate, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(Predicate parsed, Predicate::Parse(predicate));
  return Filter(table, parsed, threads);
}

}  // namespace deeprc::compute
