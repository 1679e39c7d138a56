#include "internal/NNForceImpl.h"
#include "NNForceKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

void NNForceImpl::initialize(ContextImpl& context) {
    const System& system = context.getSystem();
    int numParticles = system.getNumParticles();
    const vector<int>& atoms = owner.getAtoms();
    for (int a : atoms)
        if (a >= numParticles)
            throw OpenMMException("NNForce: atom index " + to_string(a) + " given to setAtoms is out of range: the System has " +
                                  to_string(numParticles) + " particles.");
    int numModelAtoms = atoms.empty() ? numParticles : (int) atoms.size();
    int numAtomicNumbers = owner.getAtomicNumbers().size();
    if (numAtomicNumbers != 0 && numAtomicNumbers != numModelAtoms)
        throw OpenMMException("NNForce: setAtomicNumbers gave " + to_string(numAtomicNumbers) + " atomic numbers but the model sees " +
                              to_string(numModelAtoms) + " atoms.");
    int numReplicaIndices = owner.getAtomReplicas().size();
    if (numReplicaIndices != 0 && numReplicaIndices != numModelAtoms)
        throw OpenMMException("NNForce: setAtomReplicas gave " + to_string(numReplicaIndices) + " replica indices but the model sees " +
                              to_string(numModelAtoms) + " atoms; give one per model atom.");
    for (int i = 0; i < owner.getNumPerAtomInputs(); i++) {
        int rows = owner.getPerAtomInputValues(i).size() / owner.getPerAtomInputWidth(i);
        if (rows != numModelAtoms)
            throw OpenMMException("NNForce: per-atom input '" + owner.getPerAtomInputName(i) + "' has " + to_string(rows) +
                                  " rows but the model sees " + to_string(numModelAtoms) + " atoms.");
    }
    for (int i = 0; i < owner.getNumEnergyParameterDerivatives(); i++) {
        const string& name = owner.getEnergyParameterDerivativeName(i);
        bool found = false;
        for (int j = 0; j < owner.getNumGlobalParameters(); j++)
            found |= (owner.getGlobalParameterName(j) == name);
        if (!found)
            throw OpenMMException("NNForce: addEnergyParameterDerivative('" + name + "') names no global parameter of this force; "
                                  "add it with addGlobalParameter first.");
    }
    kernel = context.getPlatform().createKernel(CalcNNForceKernel::Name(), context);
    kernel.getAs<CalcNNForceKernel>().initialize(system, owner);
}

double NNForceImpl::calcForcesAndEnergy(ContextImpl& context, bool includeForces, bool includeEnergy, int groups) {
    if ((groups & (1 << owner.getForceGroup())) != 0)
        return kernel.getAs<CalcNNForceKernel>().execute(context, includeForces, includeEnergy);
    return 0.0;
}

map<string, double> NNForceImpl::getDefaultParameters() {
    map<string, double> parameters;
    for (int i = 0; i < owner.getNumGlobalParameters(); i++)
        parameters[owner.getGlobalParameterName(i)] = owner.getGlobalParameterDefaultValue(i);
    return parameters;
}

vector<string> NNForceImpl::getKernelNames() {
    return {CalcNNForceKernel::Name()};
}

void NNForceImpl::updateParametersInContext(ContextImpl& context) {
    kernel.getAs<CalcNNForceKernel>().copyParametersToContext(context, owner);
    context.systemChanged();
}

vector<string> NNForceImpl::getOutputNames() {
    return kernel.getAs<CalcNNForceKernel>().getOutputNames();
}

void NNForceImpl::getOutput(const string& name, vector<double>& values, vector<int>& shape) {
    kernel.getAs<CalcNNForceKernel>().getOutput(name, values, shape);
}
