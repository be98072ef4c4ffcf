// Present so that the testing library always has a source file; the assertions are macros.
#include "testing/assertions.h"
