package dev.lora4j.examples.text;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.examples.TextFineTune;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** TextFineTune's settings are checked up front, naming the flag: no hang, no division by zero, no empty loss list. */
class TextFineTuneSettingsTest {

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "--mode probe --batch -1 | --batch",
            "--batch 0               | --batch",
            "--batch -1              | --batch",
            "--epochs -1             | --epochs",
            "--epochs 0              | --epochs",
            "--train -5              | --train",
            "--train 0               | --train",
            "--seq 0                 | --seq",
            "--rank 0                | --rank",
            "--lr NaN                | --lr",
            "--lr -1                 | --lr",
            "--head-lr Infinity      | --head-lr",
            "--alpha 0               | --alpha",
            "--epoch 5               | --epoch",
            "--seed                  | --seed",
    })
    void badSettingsAreRefusedNamingTheFlag(String flags, String flag) {
        var e = assertThrows(IllegalArgumentException.class, () -> TextFineTune.settings(flags.trim().split(" +")), flags);
        assertTrue(e.getMessage().contains(flag), flags + " -> " + e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({"--mode probe --batch 1 --epochs 1 --train 1", "--epochs=2 --seed 5000000000"})
    void goodSettingsAreTaken(String flags) {
        TextFineTune.Settings s = TextFineTune.settings(flags.split(" +"));
        assertTrue(s.batch() >= 1 && s.epochs() >= 1);
    }
}
