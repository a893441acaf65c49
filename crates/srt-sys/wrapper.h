#include <srt/srt.h>
#include <srt/logging_api.h>
