#include <librist/librist.h>
#include <librist/librist_srp.h>
