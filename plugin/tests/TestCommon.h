// Shared set-up for the C++ tests: load the plugins and report failures the ctest way (exit code).
#include "NNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

#define CHECK(condition) do { if (!(condition)) { std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #condition << std::endl; std::exit(1); } } while (0)
#define CHECK_CLOSE(expected, found, tol) do { double e_ = (expected), f_ = (found); \
    if (!(std::fabs(e_ - f_) <= (tol) * std::fmax(1.0, std::fabs(e_)))) { std::cerr << __FILE__ << ":" << __LINE__ << ": expected " << e_ << " found " << f_ << std::endl; std::exit(1); } } while (0)
#define CHECK_THROWS_WITH(statement, text) do { bool thrown_ = false; \
    try { statement; } catch (const OpenMM::OpenMMException& e_) { thrown_ = true; \
        if (std::string(e_.what()).find(text) == std::string::npos) { std::cerr << __FILE__ << ":" << __LINE__ << ": message lacks '" << text << "': " << e_.what() << std::endl; std::exit(1); } } \
    if (!thrown_) { std::cerr << __FILE__ << ":" << __LINE__ << ": expected an OpenMMException" << std::endl; std::exit(1); } } while (0)

inline void loadPlugins() {
    OpenMM::Platform::loadPluginsFromDirectory(OPENMM_PLUGIN_DIR);
    OpenMM::Platform::loadPluginsFromDirectory(NNFORCE_PLUGIN_DIR);
}

inline std::string modelPath(const std::string& name) {
    return std::string(TEST_MODEL_DIR) + "/" + name + ".pt";
}
