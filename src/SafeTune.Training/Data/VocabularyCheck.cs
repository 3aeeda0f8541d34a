using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;

namespace SafeTune.Training.Data;

/// <summary>Checks that a tokenizer belongs to a model before any token reaches it.</summary>
internal static class VocabularyCheck
{
    /// <summary>
    /// The token ids the model accepts: the rows of its token-embedding table
    /// (<see cref="GradientSession.VocabFromEmbedding"/>), else the last dim of its logits; null when neither is known.
    /// </summary>
    public static long? ModelVocabulary(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (GradientSession.VocabFromEmbedding(model) is long rows) return rows;
        var logits = model.Graph.Outputs.FirstOrDefault(o => o.Name == "logits");
        return logits?.Shape is { Rank: > 0 } shape && shape[-1].Value is long v ? v : null;
    }

    /// <summary>
    /// Throws when <paramref name="tokenizer"/> can produce ids that <paramref name="model"/> has no embedding row for: its
    /// vocabulary, special tokens included (so every marker a chat template writes, such as <c>&lt;|im_end|&gt;</c>), is
    /// larger than the model's. Models whose vocabulary cannot be read are not checked.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="modelName">The model's file (or name), for the message.</param>
    /// <param name="tokenizer">The tokenizer.</param>
    /// <exception cref="InvalidDataException">The tokenizer does not match the model; the message names both sizes and files.</exception>
    public static void Ensure(Model model, string modelName, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (ModelVocabulary(model) is not long rows) return;
        if (tokenizer.VocabularySize > rows)
            throw new InvalidDataException(
                $"the tokenizer {tokenizer.Source} has {tokenizer.VocabularySize} token ids (special tokens included) but the model {modelName} " +
                $"has {rows} embedding rows: they do not belong together");
    }
}
