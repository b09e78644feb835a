import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// Maximum likelihood for an image model on an `ImageDataset`. With dynamic binarisation, training
/// images are drawn afresh from their intensities each time they are used (from the trainer's
/// generator, so resuming stays exact); evaluation always uses the static draw.
public struct ImageTask: ConfiguredTrainingTask {
    public let model: any ImageModel
    public let dataset: ImageDataset
    /// Score validation and test with MADE's k-mask ensemble instead of mask set 0, so that the best
    /// checkpoint is the best ensemble (the MADE authors' early stopping).
    public var ensembleEvaluation = false

    public init(model: any ImageModel, dataset: ImageDataset) {
        self.model = model
        self.dataset = dataset
    }

    public var parameters: [NamedParameter] { model.parameters }
    public var dimensionsPerExample: Int { model.dimensionCount }
    public var modelConfiguration: ImageModelConfiguration { model.configuration }
    public var checkpointMetadata: [String: String] {
        ["seriatim.model": model.configuration.kind, "seriatim.data": dataset.name, "seriatim.protocol": dataset.protocolDescription]
    }

    func set(_ split: DataSplit) -> ImageSet {
        switch split {
        case .train: dataset.train
        case .validation: dataset.validation
        case .test: dataset.test
        }
    }

    public func exampleCount(_ split: DataSplit) -> Int { set(split).count }

    /// Images `[n, D]` and their labels (class-conditional models read the labels).
    public struct Batch {
        public var images: Tensor
        public var labels: [Int]
    }

    public func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> Batch {
        let images = set(split)
        let labels = indices.map { images.labels[$0] }
        if split == .train, dataset.binarization == .dynamic, let intensities = images.intensities {
            let d = images.dimensions
            return Batch(images: Tensor(shape: [indices.count, d]) { out in
                for (row, index) in indices.enumerated() {
                    for j in 0..<d { out[row * d + j] = generator.uniform() < intensities.scalars[index * d + j] ? 1 : 0 }
                }
            }, labels: labels)
        }
        return Batch(images: images.rows(indices), labels: labels)
    }

    public func loss(_ batch: Batch, generator: inout RandomGenerator) -> Variable {
        model.prepareStep(&generator)
        (model as? GatedPixelCNN)?.classes = batch.labels
        return -mean(sum(model.conditionalLogProbabilities(batch.images), axes: [1]))
    }

    public func evaluate(_ batch: Batch) -> [Double] {
        (model as? GatedPixelCNN)?.classes = batch.labels
        if ensembleEvaluation, let made = model as? MADE { return made.ensembleLogProbability(batch.images).map { -$0 } }
        return model.evaluationLogProbability(batch.images).map { -$0 }
    }
}
