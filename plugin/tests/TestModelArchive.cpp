// Model archive verification (zip structure, CRC-32 of every entry, size limits) and the hashes, against
// published test vectors; damaged copies of a real TorchScript file must be refused at construction.
#include "TestCommon.h"
#include "NNForceModelArchive.h"
#include <fstream>
#include <iterator>
#include <vector>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

static vector<char> bytesOf(const string& text) {
    return vector<char>(text.begin(), text.end());
}

static vector<char> readFile(const string& path) {
    ifstream in(path, ios::binary);
    return vector<char>(istreambuf_iterator<char>(in), istreambuf_iterator<char>());
}

int main() {
    // FIPS 180-4 examples and the CRC-32 check value of "123456789".
    CHECK(sha256Hex(bytesOf("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256Hex(bytesOf("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256Hex(bytesOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256Hex(vector<char>(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(crc32Of(bytesOf("123456789")) == 0xCBF43926u);

    vector<char> model = readFile(modelPath("lj"));
    CHECK(model.size() > 100);
    vector<ModelArchiveEntry> entries = verifyModelArchive(model, "lj.pt", ModelArchiveLimits::fromEnvironment());
    bool deflated = false, constants = false;
    for (auto& e : entries) {
        deflated |= e.method == 8;
        constants |= e.name.size() >= 13 && e.name.compare(e.name.size() - 13, 13, "constants.pkl") == 0;
    }
    CHECK(deflated && constants);  // torch.jit.save deflates the code and stores the rest

    // A flipped byte inside any entry's data fails its CRC (stored and deflated entries alike).
    for (auto& e : entries) {
        if (e.compressedSize == 0)
            continue;
        vector<char> damaged = model;
        damaged[e.dataOffset + e.compressedSize / 2] ^= 0x10;
        CHECK_THROWS_WITH(NNForce loaded(damaged), "not a valid model archive");
    }
    // Cut short anywhere: no end record, and the message does not blame torch.save.
    for (size_t keep : {model.size() / 3, model.size() - 1}) {
        vector<char> truncated(model.begin(), model.begin() + keep);
        CHECK_THROWS_WITH(NNForce loaded(truncated), "no zip end record");
    }
    // Limits: a deflated entry above the inflation limit, checked before inflating.
    ModelArchiveLimits tight{1, 1 << 20};
    CHECK_THROWS_WITH(verifyModelArchive(model, "lj.pt", tight), "NNFORCE_MAX_INFLATED_MB");
    // A directory is named as one.
    CHECK_THROWS_WITH(NNForce(string(TEST_MODEL_DIR)), "is a directory");
    cout << "Done" << endl;
    return 0;
}
